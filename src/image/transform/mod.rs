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
//! into the output, as its container stores them); a colour output keeps the source's ICC profile, so
//! its colours do not shift. The limits are checked from the header
//! before any pixel is decoded, and [`Plan::memory_bytes`] counts the pixels
//! actually decoded at the chosen scale.

mod jpeg;
mod metadata;
mod pixels;

use magick_rust::{ColorspaceType, MagickWand, PixelWand};

use crate::format::ImageFormat;
use crate::image::magick::{self, MagickError, Pinged};
use crate::job::Engine;
use crate::options::Limits;
use crate::transform::Transform;
use jpeg::JpegPlan;
use pixels::Pixels;

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
    /// ImageMagick's decode, and the bytes of the pixels handed out of its
    /// cache (see [`export_size`]).
    Magick(Pinged, u64),
}

impl Plan {
    /// The full-size image's size once upright (the largest frame's, for
    /// ImageMagick's formats).
    pub fn upright(&self) -> (u32, u32) {
        match self {
            Plan::Jpeg(p) => p.upright(),
            Plan::Magick(p, _) => (p.width as u32, p.height as u32),
        }
    }

    /// What the transform holds at its peak besides the encoded input and
    /// output: the decoded pixels at the chosen scale, their resampled
    /// copy, and a progressive JPEG's coefficients (libjpeg keeps them all
    /// until the last scan); for ImageMagick, its pixel cache and the pixels
    /// handed out of it.
    pub fn memory_bytes(&self, budget: u64) -> u64 {
        match self {
            Plan::Jpeg(p) => p.memory_bytes(),
            // A pixel cache larger than the budget is kept on disk.
            Plan::Magick(p, export) if p.cache_bytes() > budget => (16 << 20) + 2 * export,
            Plan::Magick(p, export) => p.cache_bytes() + 2 * export,
        }
    }
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
        && let Some(plan) = jpeg::plan(data, transform, limits)?
    {
        return Ok(Plan::Jpeg(plan));
    }
    let pinged = magick::ping(data, limits)?;
    let (w, h) = export_size(pinged.width, pinged.height, transform);
    // Four bytes a pixel at most (RGBA).
    Ok(Plan::Magick(pinged, 4 * w as u64 * h as u64))
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
            let (pixels, icc) = jpeg::decode(data, &p, transform)?;
            let (uw, uh) = p.upright();
            let pixels = pixels::orient(pixels, p.orientation);
            (pixels, icc, Engine::TurboJpeg, transform.geometry(uw, uh))
        }
        Plan::Magick(..) => {
            let alpha = output != ImageFormat::Jpeg;
            let (pixels, (w, h)) = decode_magick(data, transform, alpha)?;
            let icc = if transform.keep_color {
                icc_profile(data)
            } else {
                None
            };
            (pixels, icc, Engine::Decoded, transform.geometry(w, h))
        }
    };
    let pixels = pixels::resample(pixels, geometry).map_err(|message| TransformError::Encode {
        format: output,
        message,
    })?;
    let kept = if transform.keep_metadata && format == ImageFormat::Jpeg {
        metadata::Kept::from_jpeg(data)
    } else {
        metadata::Kept::default()
    };
    let icc = icc.as_deref();
    let encoded = match output {
        ImageFormat::Png => pixels::encode_png(&pixels, icc, &kept),
        ImageFormat::Webp => pixels::encode_webp(&pixels, transform.quality(), icc, &kept),
        _ => jpeg::encode(&pixels, transform.quality(), icc, &kept.jpeg_segments()),
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

/// Any other image's first frame, upright, as 8-bit pixels: gray unless
/// colour is kept, with its alpha when the output can hold one (else
/// flattened on white); and the upright frame's full size, which the
/// geometry is computed from (the pixels may be handed out reduced).
fn decode_magick(
    data: &[u8],
    transform: &Transform,
    alpha: bool,
) -> Result<(Pixels, (u32, u32)), TransformError> {
    let wand = MagickWand::new();
    wand.read_image_blob(data)
        .map_err(|e| magick::decode_error(e.to_string()))?;
    if let Some(message) = magick::truncation_warning(&wand) {
        return Err(TransformError::Corrupt(message));
    }
    wand.set_first_iterator();
    let failed = |e: magick_rust::MagickError| MagickError::Transform(e.to_string());
    wand.auto_orient();
    // A large reduction starts in ImageMagick, averaging boxes down to
    // twice the size asked for, so the pixels handed out stay small.
    let (w, h) = (wand.get_image_width(), wand.get_image_height());
    let (ew, eh) = export_size(w, h, transform);
    if (ew, eh) != (w, h) {
        wand.resize_image(ew, eh, magick_rust::FilterType::Box)
            .map_err(failed)?;
    }
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
    let pixels = Pixels {
        data,
        width: width as u32,
        height: height as u32,
        channels: map.len() as u8,
    };
    Ok((pixels, (w as u32, h as u32)))
}

/// The size ImageMagick hands pixels out at for a `width` x `height`
/// image: twice the resampled size where that is at most half the image's
/// (the last reduction then stays with the Lanczos3 resampler), else its own.
fn export_size(width: usize, height: usize, transform: &Transform) -> (usize, usize) {
    let g = transform.geometry(width as u32, height as u32);
    let (sw, sh) = (2 * g.scaled.0 as usize, 2 * g.scaled.1 as usize);
    if sw <= width && sh <= height && (sw, sh) != (width, height) {
        (sw, sh)
    } else {
        (width, height)
    }
}

/// The ICC profile of an image ImageMagick reads, from its headers alone (a
/// ping). magick_rust's wand does not hand out profiles, so a wand of the C
/// API's own reads it.
fn icc_profile(data: &[u8]) -> Option<Vec<u8>> {
    use magick_rust::bindings;
    // SAFETY: a wand made, used and destroyed here; `data` is valid for its
    // length during the ping; the profile ImageMagick allocates is copied,
    // then relinquished exactly once.
    unsafe {
        let wand = bindings::NewMagickWand();
        if wand.is_null() {
            return None;
        }
        let mut profile = None;
        let pinged = bindings::MagickPingImageBlob(wand, data.as_ptr().cast(), data.len());
        if pinged == bindings::MagickBooleanType::MagickTrue {
            let mut len = 0usize;
            let bytes = bindings::MagickGetImageProfile(wand, c"icc".as_ptr(), &mut len);
            if !bytes.is_null() {
                if len > 0 {
                    profile = Some(std::slice::from_raw_parts(bytes, len).to_vec());
                }
                bindings::MagickRelinquishMemory(bytes.cast());
            }
        }
        bindings::DestroyMagickWand(wand);
        profile
    }
}
