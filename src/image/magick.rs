//! ImageMagick: the grayscale conversion itself, and the set-up that keeps it safe.
//!
//! `transform_image_colorspace(GRAY)` converts the pixels; the Go original's
//! `-set colorspace Gray` only relabelled them. Each image is pinged first (the
//! header alone) so width, height and pixel count are checked before a byte of
//! pixel data is decoded: a 60000×60000 PNG bomb is a few hundred kilobytes
//! and would need gigabytes once decoded.
//!
//! ImageMagick is configured once per process: its own threads are limited to
//! one, because the pipeline already runs one conversion per core, and a
//! security policy restricts it to the accepted raster formats (HEIC and
//! AVIF, through libheif, for reading only), with every
//! delegate (Ghostscript, external programs) and indirect read (`@file`)
//! disabled. The policy is applied by the binary, not read from a system file,
//! and then verified; if a system policy already loaded grants more, batchimg
//! refuses to start rather than run unprotected.

use std::ffi::CString;
use std::sync::OnceLock;

use magick_rust::bindings;
use magick_rust::{ColorspaceType, MagickWand, ResourceType, magick_wand_genesis};

use crate::format::ImageFormat;
use crate::options::Limits;

/// A converted image, encoded in its source format.
#[derive(Debug)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
}

/// Why ImageMagick could not convert an image.
#[derive(Debug, thiserror::Error)]
pub enum MagickError {
    #[error(
        "image is {width}x{height} in {frames} frame(s), over the limits \
         ({max_width}x{max_height}, {max_pixels} pixels)"
    )]
    TooLarge {
        width: usize,
        height: usize,
        frames: usize,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error(
        "the image needs more memory or disk than the budget allows ({message}); \
         memory budget {budget}"
    )]
    OverBudget { message: String, budget: String },
    #[error("cannot decode the image: {0}")]
    Decode(String),
    #[error("the image is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("cannot convert the image: {0}")]
    Transform(String),
    #[error("cannot encode the result as {format}: {message}")]
    Encode {
        format: ImageFormat,
        message: String,
    },
}

/// Formats ImageMagick may decode or encode; everything else is denied.
const POLICY: &str = r#"<policymap>
  <policy domain="delegate" rights="none" pattern="*"/>
  <policy domain="filter" rights="none" pattern="*"/>
  <policy domain="path" rights="none" pattern="@*"/>
  <policy domain="coder" rights="none" pattern="*"/>
  <policy domain="coder" rights="read|write" pattern="{JPEG,PNG,GIF,WEBP,TIFF,BMP}"/>
  <policy domain="coder" rights="read" pattern="{HEIC,AVIF}"/>
  <policy domain="module" rights="none" pattern="*"/>
  <policy domain="module" rights="read|write" pattern="{JPEG,PNG,GIF,WEBP,TIFF,BMP}"/>
  <policy domain="module" rights="read|write" pattern="{HEIC,AVIF}"/>
</policymap>"#;

/// Coders that have carried exploits (ImageTragick and since) and must stay off.
const DANGEROUS: [&str; 14] = [
    "SVG",
    "MSVG",
    "MVG",
    "MSL",
    "PS",
    "EPS",
    "PDF",
    "XPS",
    "TEXT",
    "TXT",
    "LABEL",
    "URL",
    "HTTPS",
    "EPHEMERAL",
];

/// The ImageMagick library loaded at run time, and its delegate libraries
/// (the JPEG, PNG, WebP… coders), for `--version`.
pub fn version() -> String {
    let text = |p: *const std::ffi::c_char| {
        if p.is_null() {
            String::from("unknown")
        } else {
            // SAFETY: ImageMagick returns pointers to its own static,
            // NUL-terminated strings, valid for the life of the process.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .trim()
                .to_string()
        }
    };
    // SAFETY: neither call needs the library initialised; a null argument
    // means "don't return the version number too".
    let (version, delegates) = unsafe {
        (
            text(bindings::MagickGetVersion(std::ptr::null_mut())),
            text(bindings::GetMagickDelegates()),
        )
    };
    format!("{version}\nImageMagick delegates: {delegates}")
}

/// Sets ImageMagick up once per process. Cheap to call again.
pub fn init(limits: &Limits) -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        magick_wand_genesis();
        apply_policy()?;
        let set = |r, v: u64| MagickWand::set_resource_limit(r, v).map_err(|e| e.to_string());
        set(ResourceType::Thread, 1)?;
        // Hard backstops far behind the ping check, which enforces the
        // configured limits with a clear error: ImageMagick hands these to
        // libpng, which would otherwise reject a large header as "invalid".
        const BACKSTOP: u64 = 1 << 20;
        set(
            ResourceType::Width,
            u64::from(limits.max_width).max(BACKSTOP),
        )?;
        set(
            ResourceType::Height,
            u64::from(limits.max_height).max(BACKSTOP),
        )?;
        // ListLength bounds the frames of a GIF.
        set(ResourceType::ListLength, 10_000)?;
        Ok(())
    })
    .clone()
}

fn apply_policy() -> Result<(), String> {
    let policy = CString::new(POLICY).expect("no NUL in the policy");
    // SAFETY: both pointers are valid for the duration of the call, and the
    // exception is destroyed exactly once.
    unsafe {
        let exception = bindings::AcquireExceptionInfo();
        bindings::SetMagickSecurityPolicy(policy.as_ptr(), exception);
        bindings::DestroyExceptionInfo(exception);
    }
    for coder in DANGEROUS {
        if authorized(
            bindings::PolicyDomain::Coder,
            bindings::PolicyRights::Read,
            coder,
        ) {
            return Err(format!(
                "ImageMagick's policy allows the {coder} coder: a system policy.xml was \
                 loaded before batchimg's own. Remove it or set MAGICK_CONFIGURE_PATH to an \
                 empty directory"
            ));
        }
    }
    // Read only: libheif decodes them, nothing encodes them.
    for coder in ["HEIC", "AVIF"] {
        if authorized(
            bindings::PolicyDomain::Coder,
            bindings::PolicyRights::Write,
            coder,
        ) {
            return Err(format!(
                "ImageMagick's policy allows writing {coder}: a system policy.xml was loaded \
                 before batchimg's own. Remove it or set MAGICK_CONFIGURE_PATH to an empty \
                 directory"
            ));
        }
    }
    if authorized(
        bindings::PolicyDomain::Delegate,
        bindings::PolicyRights::Execute,
        "gs",
    ) {
        return Err("ImageMagick's policy allows delegates such as Ghostscript".into());
    }
    for format in ImageFormat::ALL {
        if !authorized(
            bindings::PolicyDomain::Coder,
            bindings::PolicyRights::Read,
            format.coder(),
        ) {
            return Err(format!(
                "ImageMagick's policy denies {format}, which batchimg needs"
            ));
        }
    }
    Ok(())
}

fn authorized(
    domain: bindings::PolicyDomain,
    rights: bindings::PolicyRights,
    pattern: &str,
) -> bool {
    let pattern = CString::new(pattern).expect("no NUL in a coder name");
    // SAFETY: a plain query on a NUL-terminated string.
    let ok = unsafe { bindings::IsRightsAuthorized(domain, rights, pattern.as_ptr()) };
    ok == bindings::MagickBooleanType::MagickTrue
}

/// What ImageMagick's pixel cache takes per pixel: Q16-HDRI keeps a 4-byte
/// float per channel, and the grayscale transform holds the source's
/// channels and the gray result at once. Measured on a 98-megapixel RGB
/// JPEG: a peak of 1.54 GB, 15.7 bytes a pixel, against 16 from this.
fn bytes_per_pixel(channels: usize) -> u64 {
    4 * (channels as u64 + 1)
}

/// Limits ImageMagick's pixel caches to `budget` bytes in all, and keeps an
/// image whose cache would not fit on disk in `temp_dir` instead (about as
/// fast: the file stays in the page cache). Process-wide; the last call wins.
pub fn set_memory(budget: u64, temp_dir: &std::path::Path) -> Result<(), String> {
    let set = |r, v: u64| MagickWand::set_resource_limit(r, v).map_err(|e| e.to_string());
    set(ResourceType::Memory, budget)?;
    // No memory-mapped files: their dirty pages would count against a
    // container's memory just as heap does, without the budget's say.
    set(ResourceType::Map, 0)?;
    // Area is the largest image whose cache may be in memory at all.
    set(ResourceType::Area, budget / bytes_per_pixel(4))?;
    BUDGET.store(budget, std::sync::atomic::Ordering::Relaxed);
    let path = CString::new(temp_dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "the work directory's path contains a NUL byte".to_string())?;
    // SAFETY: a registry key and value, both NUL-terminated and valid for
    // the call, which copies them; the exception is destroyed exactly once.
    unsafe {
        let exception = bindings::AcquireExceptionInfo();
        bindings::SetImageRegistry(
            bindings::RegistryType::String,
            c"temporary-path".as_ptr(),
            path.as_ptr().cast(),
            exception,
        );
        bindings::DestroyExceptionInfo(exception);
    }
    Ok(())
}

/// The budget `set_memory` gave ImageMagick, for error messages.
static BUDGET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An image's header: what a conversion will need, known before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinged {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    /// Channels of the largest frame, alpha included.
    pub channels: usize,
}

impl Pinged {
    /// The pixel cache a conversion of this image takes in memory, in bytes.
    pub fn cache_bytes(&self) -> u64 {
        let pixels = self.width as u64 * self.height as u64 * self.frames.max(1) as u64;
        pixels.saturating_mul(bytes_per_pixel(self.channels))
    }
}

/// Converts `data` (already sniffed as `format`) to grayscale, keeping its format,
/// every frame, and its alpha channel; EXIF orientation is applied, then metadata
/// stripped.
pub fn grayscale(
    data: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Converted, MagickError> {
    let pinged = ping(data, limits)?;
    grayscale_pinged(data, format, pinged)
}

/// [`grayscale`] of an image already pinged (and so checked against the limits).
pub fn grayscale_pinged(
    data: &[u8],
    format: ImageFormat,
    pinged: Pinged,
) -> Result<Converted, MagickError> {
    let Pinged {
        width,
        height,
        frames,
        ..
    } = pinged;
    let wand = MagickWand::new();
    wand.read_image_blob(data)
        .map_err(|e| decode_error(e.to_string()))?;
    if let Some(message) = truncation_warning(&wand) {
        return Err(MagickError::Corrupt(message));
    }

    wand.reset_iterator();
    while wand.next_image() {
        wand.auto_orient();
        wand.transform_image_colorspace(ColorspaceType::GRAY)
            .map_err(|e| MagickError::Transform(e.to_string()))?;
        wand.strip_image()
            .map_err(|e| MagickError::Transform(e.to_string()))?;
    }

    let encoded = if wand.get_number_images() > 1 {
        wand.write_images_blob(format.coder())
    } else {
        wand.write_image_blob(format.coder())
    };
    let bytes = encoded.map_err(|e| MagickError::Encode {
        format,
        message: e.to_string(),
    })?;
    Ok(Converted {
        bytes,
        width,
        height,
        frames,
    })
}

/// A decoding error, or the budget's when ImageMagick ran out of cache room.
pub(crate) fn decode_error(message: String) -> MagickError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("cache resources exhausted") || lower.contains("memory allocation failed") {
        let budget = BUDGET.load(std::sync::atomic::Ordering::Relaxed);
        MagickError::OverBudget {
            message,
            budget: bytesize::ByteSize::b(budget).display().iec().to_string(),
        }
    } else {
        MagickError::Decode(message)
    }
}

/// Reads only the headers, and checks every frame against the limits.
pub fn ping(data: &[u8], limits: &Limits) -> Result<Pinged, MagickError> {
    let wand = MagickWand::new();
    wand.ping_image_blob(data).map_err(|e| {
        let message = e.to_string();
        // ImageMagick's own width/height limits fire during the ping.
        if message.contains("exceeds limit") || message.contains("WidthOrHeightExceedsLimit") {
            MagickError::TooLarge {
                width: 0,
                height: 0,
                frames: 0,
                max_width: limits.max_width,
                max_height: limits.max_height,
                max_pixels: limits.max_pixels,
            }
        } else {
            MagickError::Decode(message)
        }
    })?;
    let frames = wand.get_number_images();
    let (mut width, mut height, mut pixels, mut channels) = (0usize, 0usize, 0u64, 1usize);
    wand.reset_iterator();
    while wand.next_image() {
        let (w, h) = (wand.get_image_width(), wand.get_image_height());
        width = width.max(w);
        height = height.max(h);
        pixels = pixels.saturating_add(w as u64 * h as u64);
        let colour = match wand.get_image_colorspace() {
            ColorspaceType::GRAY | ColorspaceType::LinearGRAY => 1,
            ColorspaceType::CMYK | ColorspaceType::CMY => 4,
            _ => 3,
        };
        channels = channels.max(colour + usize::from(wand.get_image_alpha_channel()));
    }
    if limits.exceeded_by(width, height, pixels) {
        return Err(MagickError::TooLarge {
            width,
            height,
            frames,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(Pinged {
        width,
        height,
        frames,
        channels,
    })
}

/// ImageMagick decodes a truncated JPEG "successfully", filling the missing
/// rows with grey, and only warns. A warning that says data is missing is
/// treated as the failure it is; other corrupt-data warnings (stray bytes
/// between markers, common in camera files) are tolerated.
pub(crate) fn truncation_warning(wand: &MagickWand) -> Option<String> {
    use bindings::ExceptionType;
    let severity = wand.get_exception_type();
    if severity == ExceptionType::UndefinedException {
        return None;
    }
    let (message, _) = wand.get_exception().ok()?;
    let lower = message.to_ascii_lowercase();
    let missing_data = [
        "premature end",
        "truncat",
        "insufficient image data",
        "unexpected end",
        "short read",
    ]
    .iter()
    .any(|m| lower.contains(m));
    if missing_data {
        Some(message)
    } else {
        tracing::debug!(warning = %message, "ImageMagick warning tolerated");
        None
    }
}

#[cfg(test)]
mod tests {
    //! Conversions of real images made with ImageMagick itself, under the
    //! policy batchimg applies (these tests share one process-wide policy).

    use super::*;
    use magick_rust::{AlphaChannelOption, OrientationType, PixelWand};

    fn limits() -> Limits {
        let l = Limits::default();
        init(&l).expect("ImageMagick set-up");
        l
    }

    /// An image from raw pixels laid out as `map`, encoded as `coder`.
    fn make(
        width: usize,
        height: usize,
        map: &str,
        pixels: &[u8],
        coder: &str,
        depth: usize,
    ) -> Vec<u8> {
        limits();
        let mut wand = MagickWand::new();
        let mut bg = PixelWand::new();
        bg.set_color("black").unwrap();
        wand.new_image(width, height, &bg).unwrap();
        if map.contains('A') {
            wand.set_image_alpha_channel(AlphaChannelOption::Set)
                .unwrap();
        }
        if map == "CMYK" {
            wand.set_image_colorspace(ColorspaceType::CMYK).unwrap();
        }
        wand.import_image_pixels(0, 0, width, height, pixels, map)
            .unwrap();
        wand.set_image_depth(depth).unwrap();
        wand.write_image_blob(coder).unwrap()
    }

    fn colourful(width: usize, height: usize, channels: usize) -> Vec<u8> {
        (0..width * height * channels)
            .map(|i| ((i * 37) % 251) as u8)
            .collect()
    }

    fn decode(bytes: &[u8]) -> MagickWand {
        let wand = MagickWand::new();
        wand.read_image_blob(bytes).unwrap();
        wand
    }

    fn all_gray(wand: &MagickWand) -> bool {
        let mut gray = true;
        wand.reset_iterator();
        while wand.next_image() {
            let (w, h) = (wand.get_image_width(), wand.get_image_height());
            let px = wand.export_image_pixels(0, 0, w, h, "RGB").unwrap();
            gray &= px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]);
        }
        gray
    }

    #[test]
    fn each_format_stays_itself_and_turns_gray() {
        let l = limits();
        for (coder, format) in [
            ("JPEG", ImageFormat::Jpeg),
            ("PNG", ImageFormat::Png),
            ("WEBP", ImageFormat::Webp),
            ("TIFF", ImageFormat::Tiff),
            ("BMP", ImageFormat::Bmp),
            ("GIF", ImageFormat::Gif),
        ] {
            let source = make(30, 20, "RGB", &colourful(30, 20, 3), coder, 8);
            assert_eq!(ImageFormat::sniff(&source), Some(format), "{coder}");
            let out = grayscale(&source, format, &l).unwrap_or_else(|e| panic!("{coder}: {e}"));
            assert_eq!(
                ImageFormat::sniff(&out.bytes),
                Some(format),
                "{coder} in, {coder} out"
            );
            let wand = decode(&out.bytes);
            assert_eq!(
                (wand.get_image_width(), wand.get_image_height()),
                (30, 20),
                "{coder}"
            );
            if format != ImageFormat::Webp {
                // WebP is lossy in RGB; its channels may differ by rounding.
                assert!(all_gray(&wand), "{coder}");
            }
        }
    }

    #[test]
    fn every_gif_frame_is_converted() {
        let l = limits();
        let mut anim = MagickWand::new();
        for i in 0..3 {
            let frame = decode(&make(
                16,
                16,
                "RGB",
                &colourful(16, 16, 3)[i..].repeat(2)[..16 * 16 * 3],
                "GIF",
                8,
            ));
            anim.add_image(&frame).unwrap();
        }
        let source = anim.write_images_blob("GIF").unwrap();
        let out = grayscale(&source, ImageFormat::Gif, &l).unwrap();
        assert_eq!(out.frames, 3);
        let wand = decode(&out.bytes);
        assert_eq!(wand.get_number_images(), 3);
        assert!(all_gray(&wand));
    }

    #[test]
    fn alpha_is_kept() {
        let l = limits();
        let mut rgba = colourful(20, 10, 4);
        for (i, px) in rgba.chunks_mut(4).enumerate() {
            px[3] = (i % 20 * 12) as u8;
        }
        let source = make(20, 10, "RGBA", &rgba, "PNG", 8);
        let out = grayscale(&source, ImageFormat::Png, &l).unwrap();
        let wand = decode(&out.bytes);
        assert!(wand.get_image_alpha_channel());
        let alpha = wand.export_image_pixels(0, 0, 20, 1, "A").unwrap();
        let want: Vec<u8> = (0..20).map(|x| (x * 12) as u8).collect();
        assert_eq!(alpha, want);
    }

    #[test]
    fn cmyk_sixteen_bit_and_gray_inputs_convert_correctly() {
        let l = limits();
        // All-zero CMYK is white: a converter that ignores CMYK makes it black.
        let white_cmyk = make(8, 8, "CMYK", &[0u8; 8 * 8 * 4], "JPEG", 8);
        let out = grayscale(&white_cmyk, ImageFormat::Jpeg, &l).unwrap();
        let px = decode(&out.bytes)
            .export_image_pixels(0, 0, 8, 8, "R")
            .unwrap();
        assert!(px.iter().all(|&v| v > 240), "CMYK white came out {px:?}");

        let deep = {
            let mut wand = MagickWand::new();
            let mut bg = PixelWand::new();
            bg.set_color("black").unwrap();
            wand.new_image(10, 10, &bg).unwrap();
            // Values no 8-bit image can hold, so the PNG must stay 16-bit.
            let px: Vec<f64> = (0..300)
                .map(|i| (i * 997 % 65521) as f64 / 65535.0)
                .collect();
            wand.import_image_pixels_double(0, 0, 10, 10, &px, "RGB")
                .unwrap();
            wand.set_image_depth(16).unwrap();
            wand.write_image_blob("PNG").unwrap()
        };
        assert_eq!(decode(&deep).get_image_depth(), 16);
        let out = grayscale(&deep, ImageFormat::Png, &l).unwrap();
        let wand = decode(&out.bytes);
        assert_eq!(wand.get_image_depth(), 16, "16-bit stays 16-bit");
        assert!(all_gray(&wand));

        let gray = grayscale(&out.bytes, ImageFormat::Png, &l).unwrap();
        assert!(
            all_gray(&decode(&gray.bytes)),
            "an already-gray image works"
        );
    }

    #[test]
    fn exif_orientation_is_applied_then_stripped() {
        let l = limits();
        let mut wand = decode(&make(40, 20, "RGB", &colourful(40, 20, 3), "JPEG", 8));
        // Orientation 6: the camera was turned; viewers rotate 90° clockwise.
        wand.set_image_orientation(OrientationType::RightTop)
            .unwrap();
        let profile = exif_with_orientation(6);
        wand.profile_image("exif", Some(profile.as_slice()))
            .unwrap();
        let source = wand.write_image_blob("JPEG").unwrap();
        let out = grayscale(&source, ImageFormat::Jpeg, &l).unwrap();
        let wand = decode(&out.bytes);
        assert_eq!((wand.get_image_width(), wand.get_image_height()), (20, 40));
        assert!(
            wand.get_image_property("exif:Orientation").is_err(),
            "metadata stripped"
        );
    }

    /// A minimal little-endian EXIF block holding only an orientation.
    fn exif_with_orientation(value: u16) -> Vec<u8> {
        let mut e = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
        e.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
        e.extend_from_slice(&value.to_le_bytes());
        e.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        e
    }

    #[test]
    fn dangerous_coders_are_refused_even_if_the_sniffing_were_bypassed() {
        let l = limits();
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="file:///etc/passwd"/></svg>"#;
        let mvg = b"push graphic-context\nviewbox 0 0 10 10\nimage over 0,0 0,0 'file:///etc/passwd'\npop graphic-context\n";
        let ps = b"%!PS-Adobe-3.0\n/Times findfont 12 scalefont setfont\nnewpath 0 0 moveto (x) show showpage\n";
        for (name, data) in [("SVG", &svg[..]), ("MVG", &mvg[..]), ("PS", &ps[..])] {
            let result = grayscale(data, ImageFormat::Png, &l);
            assert!(result.is_err(), "{name} must not decode");
        }
        for coder in DANGEROUS {
            assert!(
                !authorized(
                    bindings::PolicyDomain::Coder,
                    bindings::PolicyRights::Read,
                    coder
                ),
                "{coder}"
            );
        }
    }
}
