//! The transform engine (`--resize`, `--fit`, `--format`, `--quality`,
//! `--keep-color`): decode, stand upright, resample, encode.
//!
//! A JPEG is decoded by libjpeg-turbo already shrunk inside the IDCT, at the
//! largest reduction (1/2, 1/4 or 1/8) that still leaves at least the size
//! asked for, as libvips' shrink-on-load does; the entropy decoding is paid
//! in full, but the IDCT, the colour conversion and the memory shrink with
//! the scale, and a gray output decodes the luma alone. Every other format
//! (and the JPEGs libjpeg-turbo cannot take as pixels: CMYK, 12-bit,
//! lossless) is decoded by ImageMagick, HEIC and AVIF through its libheif
//! coder. Then the EXIF orientation is applied, the rest of the way is
//! resampled with `fast_image_resize` (SIMD; Lanczos3, its kernel widened
//! with the reduction, so a large one averages every source pixel), and the
//! result encoded by libjpeg-turbo, libwebp or the `png` crate.
//!
//! Nothing of the source's metadata is written unless `--keep-metadata`
//! asks (then a JPEG's EXIF, orientation reset to 1, XMP and comments go
//! into a JPEG output); a colour JPEG output keeps the source's ICC profile,
//! so its colours do not shift. The limits are checked from the header
//! before any pixel is decoded, and [`Plan::memory_bytes`] counts the pixels
//! actually decoded at the chosen scale.

use std::cell::RefCell;
use std::ffi::CStr;

use fast_image_resize as fr;
use magick_rust::{ColorspaceType, MagickWand, PixelWand};
use turbojpeg::raw;

use crate::format::ImageFormat;
use crate::image::lossless;
use crate::image::magick::{self, MagickError, Pinged};
use crate::job::Engine;
use crate::options::Limits;
use crate::transform::Transform;

/// Why a transform did not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(
        "image is {width}x{height}, over the limits ({max_width}x{max_height}, {max_pixels} pixels)"
    )]
    TooLarge {
        width: usize,
        height: usize,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("the image is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Magick(#[from] MagickError),
    #[error("cannot encode the result as {format}: {message}")]
    Encode {
        format: ImageFormat,
        message: String,
    },
}

/// An encoded output.
pub struct Made {
    pub bytes: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub engine: Engine,
}

/// How an image will be decoded, decided from its header.
pub enum Plan {
    Jpeg(JpegPlan),
    Magick(Pinged),
}

/// A JPEG libjpeg-turbo decodes at a reduced scale.
pub struct JpegPlan {
    width: usize,
    height: usize,
    orientation: u32,
    /// The scale, `num/8`.
    num: i32,
    progressive: bool,
    /// Samples per pixel of all components together, times 4 (as in `lossless`).
    samples_x4: u64,
    /// The source has only a luma plane.
    gray: bool,
}

impl JpegPlan {
    fn scaled(&self) -> (usize, usize) {
        let s = |d: usize| (d * self.num as usize).div_ceil(8);
        (s(self.width), s(self.height))
    }
}

impl Plan {
    /// What the transform holds at its peak besides the encoded input and
    /// output: the decoded pixels at the chosen scale, their resampled
    /// copy, and a progressive JPEG's coefficients (libjpeg keeps them all
    /// until the last scan).
    pub fn memory_bytes(&self, budget: u64) -> u64 {
        match self {
            Plan::Jpeg(p) => {
                let (w, h) = p.scaled();
                let pixels = 2 * (w as u64 * h as u64) * if p.gray { 1 } else { 3 };
                let coefficients = if p.progressive {
                    p.width as u64 * p.height as u64 * p.samples_x4 / 2
                } else {
                    0
                };
                pixels + coefficients
            }
            // A pixel cache larger than the budget is kept on disk.
            Plan::Magick(p) if p.cache_bytes() > budget => 16 << 20,
            Plan::Magick(p) => p.cache_bytes(),
        }
    }
}

/// A TurboJPEG instance of one kind, one per conversion thread.
struct Handle(raw::tjhandle);

impl Handle {
    fn new(kind: raw::TJINIT) -> Option<Handle> {
        // SAFETY: plain initialisation; a null handle is checked.
        let h = unsafe { raw::tj3Init(kind as libc::c_int) };
        (!h.is_null()).then_some(Handle(h))
    }

    fn error(&self) -> String {
        // SAFETY: the handle is valid; the string is owned by it and copied here.
        unsafe {
            let s = raw::tj3GetErrorStr(self.0);
            if s.is_null() {
                "unknown TurboJPEG error".into()
            } else {
                CStr::from_ptr(s).to_string_lossy().into_owned()
            }
        }
    }

    fn get(&self, param: raw::TJPARAM) -> libc::c_int {
        // SAFETY: the handle is valid.
        unsafe { raw::tj3Get(self.0, param as libc::c_int) }
    }

    fn set(&self, param: raw::TJPARAM, value: libc::c_int) -> Result<(), String> {
        // SAFETY: the handle is valid.
        match unsafe { raw::tj3Set(self.0, param as libc::c_int, value) } {
            0 => Ok(()),
            _ => Err(self.error()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by tj3Init, destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

thread_local! {
    static DECOMPRESS: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static COMPRESS: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

fn with<T>(
    key: &'static std::thread::LocalKey<RefCell<Option<Handle>>>,
    kind: raw::TJINIT,
    f: impl FnOnce(&Handle) -> T,
) -> Option<T> {
    key.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Handle::new(kind);
        }
        slot.as_ref().map(f)
    })
}

/// Decides how `data` (sniffed as `format`) is decoded, checking the pixel
/// limits from its header first.
pub fn plan(
    data: &[u8],
    format: ImageFormat,
    transform: &Transform,
    limits: &Limits,
) -> Result<Plan, TransformError> {
    if format == ImageFormat::Jpeg
        && let Some(plan) = jpeg_plan(data, transform, limits)?
    {
        return Ok(Plan::Jpeg(plan));
    }
    Ok(Plan::Magick(magick::ping(data, limits)?))
}

/// The JPEG plan, or `None` when libjpeg-turbo cannot give its pixels
/// (ImageMagick's case, which reports what is wrong).
fn jpeg_plan(
    data: &[u8],
    transform: &Transform,
    limits: &Limits,
) -> Result<Option<JpegPlan>, TransformError> {
    let header = with(&DECOMPRESS, raw::TJINIT_TJINIT_DECOMPRESS, |h| {
        // SAFETY: `data` is valid for its length during the call.
        let res =
            unsafe { raw::tj3DecompressHeader(h.0, data.as_ptr(), data.len() as raw::size_t) };
        (res == 0).then(|| {
            (
                h.get(raw::TJPARAM_TJPARAM_JPEGWIDTH).max(0) as usize,
                h.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT).max(0) as usize,
                h.get(raw::TJPARAM_TJPARAM_COLORSPACE),
                h.get(raw::TJPARAM_TJPARAM_PRECISION),
                h.get(raw::TJPARAM_TJPARAM_LOSSLESS),
                h.get(raw::TJPARAM_TJPARAM_SUBSAMP),
                h.get(raw::TJPARAM_TJPARAM_PROGRESSIVE),
            )
        })
    });
    let Some(Some((width, height, colorspace, precision, lossless, subsamp, progressive))) = header
    else {
        return Ok(None);
    };
    if limits.exceeded_by(width, height, width as u64 * height as u64) {
        return Err(TransformError::TooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    let colorspace = colorspace as raw::TJCS;
    let takes = precision == 8
        && lossless == 0
        && matches!(
            colorspace,
            raw::TJCS_TJCS_YCbCr | raw::TJCS_TJCS_GRAY | raw::TJCS_TJCS_RGB
        );
    if !takes {
        return Ok(None);
    }
    let orientation = lossless::orientation(data);
    let turned = orientation >= 5;
    let (w, h) = (width as u32, height as u32);
    let (ow, oh) = if turned { (h, w) } else { (w, h) };
    let (sw, sh) = transform.geometry(ow, oh).scaled;
    // The size needed in the stored orientation.
    let (nw, nh) = if turned { (sh, sw) } else { (sw, sh) };
    // The largest reduction that leaves at least the size needed.
    let num = [1, 2, 4]
        .into_iter()
        .find(|&n| {
            (width * n).div_ceil(8) >= nw as usize && (height * n).div_ceil(8) >= nh as usize
        })
        .unwrap_or(8) as i32;
    let samples_x4 = match subsamp as raw::TJSAMP {
        raw::TJSAMP_TJSAMP_GRAY => 4,
        raw::TJSAMP_TJSAMP_420 | raw::TJSAMP_TJSAMP_411 | raw::TJSAMP_TJSAMP_441 => 6,
        raw::TJSAMP_TJSAMP_422 | raw::TJSAMP_TJSAMP_440 => 8,
        _ => 12,
    };
    Ok(Some(JpegPlan {
        width,
        height,
        orientation,
        num,
        progressive: progressive != 0,
        samples_x4,
        gray: colorspace == raw::TJCS_TJCS_GRAY,
    }))
}

/// Decoded pixels, `channels` interleaved bytes per pixel (1 gray, 2 gray
/// and alpha, 3 RGB, 4 RGBA).
struct Pixels {
    data: Vec<u8>,
    width: u32,
    height: u32,
    channels: u8,
}

/// Transforms `data` as `plan` decided; `format` is the input's.
pub fn run(
    data: &[u8],
    format: ImageFormat,
    plan: Plan,
    transform: &Transform,
) -> Result<Made, TransformError> {
    let output = transform.output_format(format);
    // The geometry is the full-size upright image's, whatever scale the
    // pixels were decoded at, so every engine gives the same sizes.
    let (pixels, icc, engine, geometry) = match plan {
        Plan::Jpeg(p) => {
            let (pixels, icc) = decode_jpeg(data, &p, transform)?;
            let (w, h) = (p.width as u32, p.height as u32);
            let (uw, uh) = if p.orientation >= 5 { (h, w) } else { (w, h) };
            let pixels = orient(pixels, p.orientation);
            (pixels, icc, Engine::TurboJpeg, transform.geometry(uw, uh))
        }
        Plan::Magick(_) => {
            let alpha = output != ImageFormat::Jpeg;
            let pixels = decode_magick(data, transform, alpha)?;
            let geometry = transform.geometry(pixels.width, pixels.height);
            (pixels, None, Engine::Decoded, geometry)
        }
    };
    let pixels = resample(pixels, geometry).map_err(|message| TransformError::Encode {
        format: output,
        message,
    })?;
    let metadata = if transform.keep_metadata && format == ImageFormat::Jpeg {
        kept_segments(data)
    } else {
        Vec::new()
    };
    let encoded = match output {
        ImageFormat::Png => encode_png(&pixels),
        ImageFormat::Webp => encode_webp(&pixels, transform.quality()),
        _ => encode_jpeg(&pixels, transform.quality(), icc.as_deref(), &metadata),
    }
    .map_err(|message| TransformError::Encode {
        format: output,
        message,
    })?;
    Ok(Made {
        bytes: encoded,
        width: pixels.width as usize,
        height: pixels.height as usize,
        engine,
    })
}

/// A JPEG's pixels at the planned scale, gray unless colour is kept, and
/// its ICC profile when colour is kept.
fn decode_jpeg(
    data: &[u8],
    plan: &JpegPlan,
    transform: &Transform,
) -> Result<(Pixels, Option<Vec<u8>>), TransformError> {
    let gray = plan.gray || !transform.keep_color;
    let (w, h) = plan.scaled();
    let channels: usize = if gray { 1 } else { 3 };
    let mut out = vec![0u8; w * h * channels];
    let result = with(&DECOMPRESS, raw::TJINIT_TJINIT_DECOMPRESS, |handle| {
        // Markers are read only for the ICC profile of a colour output.
        let markers = if gray { 0 } else { 2 };
        handle
            .set(raw::TJPARAM_TJPARAM_SAVEMARKERS, markers)
            .map_err(|e| (raw::TJERR_TJERR_FATAL as libc::c_int, e))?;
        // SAFETY: `data` is valid for its length during the call.
        let res =
            unsafe { raw::tj3DecompressHeader(handle.0, data.as_ptr(), data.len() as raw::size_t) };
        if res != 0 {
            return Err((raw::TJERR_TJERR_FATAL as libc::c_int, handle.error()));
        }
        // As libjpeg lists them: in lowest terms.
        let factor = raw::tjscalingfactor {
            num: 1,
            denom: 8 / plan.num,
        };
        // SAFETY: the handle is valid; the factor is one libjpeg supports.
        if unsafe { raw::tj3SetScalingFactor(handle.0, factor) } != 0 {
            return Err((raw::TJERR_TJERR_FATAL as libc::c_int, handle.error()));
        }
        let format = if gray {
            raw::TJPF_TJPF_GRAY
        } else {
            raw::TJPF_TJPF_RGB
        };
        // SAFETY: `out` holds the scaled image's rows exactly (pitch 0 =
        // width x pixel size), as TJSCALED computes it (`JpegPlan::scaled`).
        let res = unsafe {
            raw::tj3Decompress8(
                handle.0,
                data.as_ptr(),
                data.len() as raw::size_t,
                out.as_mut_ptr(),
                0,
                format as libc::c_int,
            )
        };
        if res != 0 {
            // SAFETY: the handle is valid.
            let code = unsafe { raw::tj3GetErrorCode(handle.0) };
            return Err((code, handle.error()));
        }
        Ok(if gray { None } else { icc_profile(handle) })
    })
    .unwrap_or_else(|| Err((0, "TurboJPEG could not start".into())));
    let icc = match result {
        Ok(icc) => icc,
        Err((code, message)) => {
            // A warning leaves whole pixels, unless data is missing.
            let lower = message.to_ascii_lowercase();
            let missing = ["premature end", "truncat", "unexpected end", "short"]
                .iter()
                .any(|m| lower.contains(m));
            if code != raw::TJERR_TJERR_WARNING as libc::c_int || missing {
                return Err(TransformError::Corrupt(message));
            }
            tracing::debug!(warning = %message, "TurboJPEG warning tolerated");
            None
        }
    };
    Ok((
        Pixels {
            data: out,
            width: w as u32,
            height: h as u32,
            channels: channels as u8,
        },
        icc,
    ))
}

/// The ICC profile the last header read found, if any.
fn icc_profile(handle: &Handle) -> Option<Vec<u8>> {
    let mut buf: *mut libc::c_uchar = std::ptr::null_mut();
    let mut size: raw::size_t = 0;
    // SAFETY: the handle is valid; TurboJPEG allocates `buf`, which is
    // copied, then freed with tj3Free exactly once.
    unsafe {
        if raw::tj3GetICCProfile(handle.0, &mut buf, &mut size) != 0 || buf.is_null() {
            return None;
        }
        let profile = std::slice::from_raw_parts(buf, size as usize).to_vec();
        raw::tj3Free(buf.cast());
        Some(profile)
    }
}

/// Any other image's first frame, upright, as 8-bit pixels: gray unless
/// colour is kept, with its alpha when the output can hold one (else
/// flattened on white).
fn decode_magick(
    data: &[u8],
    transform: &Transform,
    alpha: bool,
) -> Result<Pixels, TransformError> {
    let wand = MagickWand::new();
    wand.read_image_blob(data)
        .map_err(|e| magick::decode_error(e.to_string()))?;
    if let Some(message) = magick::truncation_warning(&wand) {
        return Err(TransformError::Corrupt(message));
    }
    wand.set_first_iterator();
    let failed = |e: magick_rust::MagickError| MagickError::Transform(e.to_string());
    wand.auto_orient();
    let has_alpha = wand.get_image_alpha_channel();
    if has_alpha && !alpha {
        let mut white = PixelWand::new();
        white.set_color("white").map_err(failed)?;
        wand.set_image_background_color(&white).map_err(failed)?;
        wand.set_image_alpha_channel(magick_rust::AlphaChannelOption::Remove)
            .map_err(failed)?;
    }
    let gray = !transform.keep_color;
    let space = if gray {
        ColorspaceType::GRAY
    } else {
        ColorspaceType::sRGB
    };
    wand.transform_image_colorspace(space).map_err(failed)?;
    let keep_alpha = has_alpha && alpha;
    let map = match (gray, keep_alpha) {
        (true, false) => "I",
        (true, true) => "IA",
        (false, false) => "RGB",
        (false, true) => "RGBA",
    };
    let (width, height) = (wand.get_image_width(), wand.get_image_height());
    let data = wand
        .export_image_pixels(0, 0, width, height, map)
        .ok_or_else(|| MagickError::Transform("cannot read the decoded pixels".into()))?;
    Ok(Pixels {
        data,
        width: width as u32,
        height: height as u32,
        channels: map.len() as u8,
    })
}

/// The pixels turned as EXIF orientation `o` says, so they stand upright.
fn orient(p: Pixels, o: u32) -> Pixels {
    if !(2..=8).contains(&o) {
        return p;
    }
    let (w, h, c) = (p.width as usize, p.height as usize, p.channels as usize);
    let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; p.data.len()];
    for y in 0..oh {
        for x in 0..ow {
            // The source pixel that lands at (x, y) of the upright image.
            let (sx, sy) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let (d, s) = ((y * ow + x) * c, (sy * w + sx) * c);
            out[d..d + c].copy_from_slice(&p.data[s..s + c]);
        }
    }
    Pixels {
        data: out,
        width: ow as u32,
        height: oh as u32,
        channels: p.channels,
    }
}

/// The pixels resampled to `geometry`'s size and cropped to its region.
fn resample(p: Pixels, geometry: crate::transform::Geometry) -> Result<Pixels, String> {
    let (sw, sh) = geometry.scaled;
    let (left, top, cw, ch) = geometry.crop;
    if (sw, sh) == (p.width, p.height) && (cw, ch) == (sw, sh) {
        return Ok(p);
    }
    let kind = match p.channels {
        1 => fr::PixelType::U8,
        2 => fr::PixelType::U8x2,
        3 => fr::PixelType::U8x3,
        _ => fr::PixelType::U8x4,
    };
    let src = fr::images::Image::from_vec_u8(p.width, p.height, p.data, kind)
        .map_err(|e| e.to_string())?;
    let mut dst = fr::images::Image::new(cw, ch, kind);
    // The crop is in the resampled image's pixels; the resizer takes it in
    // the source's.
    let (kx, ky) = (
        f64::from(p.width) / f64::from(sw),
        f64::from(p.height) / f64::from(sh),
    );
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3))
        .crop(
            f64::from(left) * kx,
            f64::from(top) * ky,
            f64::from(cw) * kx,
            f64::from(ch) * ky,
        );
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .map_err(|e| e.to_string())?;
    Ok(Pixels {
        data: dst.into_vec(),
        width: cw,
        height: ch,
        channels: p.channels,
    })
}

thread_local! {
    /// The resizer keeps its buffers from one image to the next.
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

fn encode_jpeg(
    p: &Pixels,
    quality: u8,
    icc: Option<&[u8]>,
    metadata: &[u8],
) -> Result<Vec<u8>, String> {
    let (format, subsamp) = match p.channels {
        1 => (raw::TJPF_TJPF_GRAY, raw::TJSAMP_TJSAMP_GRAY),
        3 => (raw::TJPF_TJPF_RGB, raw::TJSAMP_TJSAMP_420),
        // Alpha was flattened for a JPEG output (`decode_magick`).
        n => return Err(format!("{n} channels cannot be written as JPEG")),
    };
    let encoded = with(&COMPRESS, raw::TJINIT_TJINIT_COMPRESS, |h| {
        h.set(raw::TJPARAM_TJPARAM_QUALITY, i32::from(quality))?;
        h.set(raw::TJPARAM_TJPARAM_SUBSAMP, subsamp as libc::c_int)?;
        let (icc_ptr, icc_len) = match icc {
            Some(profile) => (profile.as_ptr().cast_mut(), profile.len()),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: TurboJPEG copies the profile; null and 0 remove an earlier one.
        if unsafe { raw::tj3SetICCProfile(h.0, icc_ptr, icc_len as raw::size_t) } != 0 {
            return Err(h.error());
        }
        let mut out: *mut libc::c_uchar = std::ptr::null_mut();
        let mut size: raw::size_t = 0;
        // SAFETY: `p.data` holds `height` rows of `width` pixels of the
        // given format; TurboJPEG allocates `out`, copied then freed once.
        unsafe {
            let res = raw::tj3Compress8(
                h.0,
                p.data.as_ptr(),
                p.width as libc::c_int,
                0,
                p.height as libc::c_int,
                format as libc::c_int,
                &mut out,
                &mut size,
            );
            let bytes =
                (!out.is_null()).then(|| std::slice::from_raw_parts(out, size as usize).to_vec());
            if !out.is_null() {
                raw::tj3Free(out.cast());
            }
            match (res, bytes) {
                (0, Some(bytes)) => Ok(bytes),
                _ => Err(h.error()),
            }
        }
    })
    .unwrap_or_else(|| Err("TurboJPEG could not start".into()))?;
    if metadata.is_empty() {
        return Ok(encoded);
    }
    // The kept segments go right after SOI (and the JFIF APP0, if any).
    let mut at = 2;
    if encoded.get(2..4) == Some(&[0xFF, 0xE0]) {
        at += 2 + usize::from(u16::from_be_bytes([encoded[4], encoded[5]]));
    }
    let mut out = Vec::with_capacity(encoded.len() + metadata.len());
    out.extend_from_slice(&encoded[..at]);
    out.extend_from_slice(metadata);
    out.extend_from_slice(&encoded[at..]);
    Ok(out)
}

fn encode_png(p: &Pixels) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, p.width, p.height);
    encoder.set_color(match p.channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&p.data)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

fn encode_webp(p: &Pixels, quality: u8) -> Result<Vec<u8>, String> {
    // WebP has no gray mode: gray is written as RGB with equal channels,
    // as libvips does.
    let expanded;
    let (data, channels) = match p.channels {
        1 | 2 => {
            let alpha = p.channels == 2;
            expanded = p
                .data
                .chunks_exact(p.channels as usize)
                .flat_map(|px| {
                    let v = px[0];
                    let a = if alpha { Some(px[1]) } else { None };
                    [v, v, v].into_iter().chain(a)
                })
                .collect::<Vec<u8>>();
            (&expanded[..], if alpha { 4 } else { 3 })
        }
        n => (&p.data[..], n),
    };
    let stride = p.width as i32 * i32::from(channels);
    let mut out: *mut u8 = std::ptr::null_mut();
    // SAFETY: `data` holds `height` rows of `stride` bytes; libwebp
    // allocates `out`, which is copied, then freed with WebPFree once.
    unsafe {
        let size = if channels == 4 {
            libwebp_sys::WebPEncodeRGBA(
                data.as_ptr(),
                p.width as i32,
                p.height as i32,
                stride,
                f32::from(quality),
                &mut out,
            )
        } else {
            libwebp_sys::WebPEncodeRGB(
                data.as_ptr(),
                p.width as i32,
                p.height as i32,
                stride,
                f32::from(quality),
                &mut out,
            )
        };
        if size == 0 || out.is_null() {
            return Err("libwebp refused the image".into());
        }
        let bytes = std::slice::from_raw_parts(out, size).to_vec();
        libwebp_sys::WebPFree(out.cast());
        Ok(bytes)
    }
}

/// A JPEG's EXIF (orientation reset to 1, as the pixels are upright now),
/// XMP and comment segments, whole, for `--keep-metadata`.
fn kept_segments(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (marker, segment) in lossless::segments(data) {
        let keep = match marker {
            0xFE => true,
            0xE1 => {
                segment.starts_with(b"Exif\0\0") || segment.starts_with(b"http://ns.adobe.com/xap/")
            }
            _ => false,
        };
        if !keep || segment.len() + 2 > usize::from(u16::MAX) {
            continue;
        }
        let mut body = segment.to_vec();
        if body.starts_with(b"Exif\0\0") {
            reset_orientation(&mut body[6..]);
        }
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// Sets the Orientation tag (0x0112) of a TIFF body's first IFD to 1.
fn reset_orientation(tiff: &mut [u8]) {
    let little = match tiff.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return,
    };
    let u16_at = |t: &[u8], at: usize| -> Option<u16> {
        let b: [u8; 2] = t.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let Some(ifd) = tiff.get(4..8).map(|b| {
        let b: [u8; 4] = b.try_into().expect("4 bytes");
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    }) else {
        return;
    };
    let ifd = ifd as usize;
    let Some(count) = u16_at(tiff, ifd) else {
        return;
    };
    for i in 0..usize::from(count) {
        let entry = ifd + 2 + 12 * i;
        if u16_at(tiff, entry) == Some(0x0112) {
            let one = if little { [1, 0] } else { [0, 1] };
            if let Some(v) = tiff.get_mut(entry + 8..entry + 10) {
                v.copy_from_slice(&one);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_orientation_stands_upright() {
        // A 3x2 image whose pixels are their own index, turned each way:
        // the corner that EXIF says is the top-left ends up there.
        let p = || Pixels {
            data: (0..6).collect(),
            width: 3,
            height: 2,
            channels: 1,
        };
        let cases: [(u32, &[u8], u32); 8] = [
            (1, &[0, 1, 2, 3, 4, 5], 3),
            (2, &[2, 1, 0, 5, 4, 3], 3),
            (3, &[5, 4, 3, 2, 1, 0], 3),
            (4, &[3, 4, 5, 0, 1, 2], 3),
            (5, &[0, 3, 1, 4, 2, 5], 2),
            (6, &[3, 0, 4, 1, 5, 2], 2),
            (7, &[5, 2, 4, 1, 3, 0], 2),
            (8, &[2, 5, 1, 4, 0, 3], 2),
        ];
        for (o, want, width) in cases {
            let out = orient(p(), o);
            assert_eq!((out.data.as_slice(), out.width), (want, width), "{o}");
        }
    }

    #[test]
    fn the_orientation_tag_is_reset_in_either_byte_order() {
        for little in [true, false] {
            let mut tiff: Vec<u8> = if little {
                b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0".to_vec()
            } else {
                b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec()
            };
            reset_orientation(&mut tiff);
            let v = &tiff[18..20];
            assert_eq!(v, if little { [1, 0] } else { [0, 1] });
        }
        // Cut short, nothing panics.
        let mut short = b"II*\0\x08\0".to_vec();
        reset_orientation(&mut short);
    }
}
