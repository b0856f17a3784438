//! The grayscale conversion, and the ImageMagick set-up that keeps it safe.
//!
//! `transform_image_colorspace(GRAY)` converts the pixels; the Go original's
//! `-set colorspace Gray` only relabelled them. Each image is pinged first (the
//! header alone) so width, height and pixel count are checked before a byte of
//! pixel data is decoded: a 60000×60000 PNG bomb is a few hundred kilobytes
//! and would need gigabytes once decoded.
//!
//! ImageMagick is configured once per process: its own threads are limited to
//! one, because the pipeline already runs one conversion per core, and a
//! security policy restricts it to the six accepted raster formats, with every
//! delegate (Ghostscript, external programs) and indirect read (`@file`)
//! disabled. The policy is applied by the binary, not read from a system file,
//! and then verified; if a system policy already loaded grants more, batchimg
//! refuses to start rather than run unprotected.

use std::ffi::CString;
use std::sync::OnceLock;

use magick_rust::bindings;
use magick_rust::{ColorspaceType, MagickWand, ResourceType, magick_wand_genesis};

use crate::format::ImageFormat;
use crate::settings::Limits;

/// A converted image, encoded in its source format.
#[derive(Debug)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
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
  <policy domain="module" rights="none" pattern="*"/>
  <policy domain="module" rights="read|write" pattern="{JPEG,PNG,GIF,WEBP,TIFF,BMP}"/>
</policymap>"#;

/// Coders that have carried exploits (ImageTragick and since) and must stay off.
const DANGEROUS: [&str; 16] = [
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
    "HEIC",
    "AVIF",
];

/// Sets ImageMagick up once per process. Cheap to call again.
pub fn init(limits: &Limits) -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        magick_wand_genesis();
        apply_policy()?;
        let set = |r, v: u64| MagickWand::set_resource_limit(r, v).map_err(|e| e.to_string());
        set(ResourceType::Thread, 1)?;
        // Backstops behind the ping check; ListLength bounds frames in a GIF.
        set(ResourceType::Width, u64::from(limits.max_width))?;
        set(ResourceType::Height, u64::from(limits.max_height))?;
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

/// Converts `data` (already sniffed as `format`) to grayscale, keeping its format,
/// every frame, and its alpha channel; EXIF orientation is applied, then metadata
/// stripped.
pub fn grayscale(
    data: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Converted, ConvertError> {
    let (width, height, frames) = ping(data, limits)?;

    let wand = MagickWand::new();
    wand.read_image_blob(data)
        .map_err(|e| ConvertError::Decode(e.to_string()))?;
    if let Some(message) = truncation_warning(&wand) {
        return Err(ConvertError::Corrupt(message));
    }

    wand.reset_iterator();
    while wand.next_image() {
        wand.auto_orient();
        wand.transform_image_colorspace(ColorspaceType::GRAY)
            .map_err(|e| ConvertError::Transform(e.to_string()))?;
        wand.strip_image()
            .map_err(|e| ConvertError::Transform(e.to_string()))?;
    }

    let encoded = if wand.get_number_images() > 1 {
        wand.write_images_blob(format.coder())
    } else {
        wand.write_image_blob(format.coder())
    };
    let bytes = encoded.map_err(|e| ConvertError::Encode {
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

/// Reads only the headers, and checks every frame against the limits.
fn ping(data: &[u8], limits: &Limits) -> Result<(usize, usize, usize), ConvertError> {
    let wand = MagickWand::new();
    wand.ping_image_blob(data).map_err(|e| {
        let message = e.to_string();
        // ImageMagick's own width/height limits fire during the ping.
        if message.contains("exceeds limit") || message.contains("WidthOrHeightExceedsLimit") {
            ConvertError::TooLarge {
                width: 0,
                height: 0,
                frames: 0,
                max_width: limits.max_width,
                max_height: limits.max_height,
                max_pixels: limits.max_pixels,
            }
        } else {
            ConvertError::Decode(message)
        }
    })?;
    let frames = wand.get_number_images();
    let (mut width, mut height, mut pixels) = (0usize, 0usize, 0u64);
    wand.reset_iterator();
    while wand.next_image() {
        let (w, h) = (wand.get_image_width(), wand.get_image_height());
        width = width.max(w);
        height = height.max(h);
        pixels = pixels.saturating_add(w as u64 * h as u64);
    }
    if width as u64 > u64::from(limits.max_width)
        || height as u64 > u64::from(limits.max_height)
        || pixels > limits.max_pixels
    {
        return Err(ConvertError::TooLarge {
            width,
            height,
            frames,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok((width, height, frames))
}

/// ImageMagick decodes a truncated JPEG "successfully", filling the missing
/// rows with grey, and only warns. A warning that says data is missing is
/// treated as the failure it is; other corrupt-data warnings (stray bytes
/// between markers, common in camera files) are tolerated.
fn truncation_warning(wand: &MagickWand) -> Option<String> {
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
