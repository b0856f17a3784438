//! JPEGs through libjpeg-turbo: the header read that plans a scaled decode,
//! the decode itself (1/2, 1/4 or 1/8 inside the IDCT; luma alone for a gray
//! output), the ICC profile, and the encode.

use turbojpeg::raw;

use super::{Pixels, TransformError};
use crate::image::lossless;
use crate::image::tj::{self, Handle, JpegHeader, Kind};
use crate::options::Limits;
use crate::transform::Transform;

/// A JPEG libjpeg-turbo decodes at a reduced scale.
pub struct JpegPlan {
    pub(super) width: usize,
    pub(super) height: usize,
    /// The EXIF orientation, 1 to 8.
    pub(super) orientation: u32,
    /// The scale, `num/8`.
    num: i32,
    progressive: bool,
    /// Samples per pixel of all components together, times 4 (as in `lossless`).
    samples_x4: u64,
    /// The source has only a luma plane.
    gray: bool,
}

impl JpegPlan {
    /// The full-size image's size once upright.
    pub(super) fn upright(&self) -> (u32, u32) {
        let (w, h) = (self.width as u32, self.height as u32);
        if self.orientation >= 5 {
            (h, w)
        } else {
            (w, h)
        }
    }

    pub(super) fn scaled(&self) -> (usize, usize) {
        let s = |d: usize| (d * self.num as usize).div_ceil(8);
        (s(self.width), s(self.height))
    }

    /// What the decode holds at its peak: the pixels at the chosen scale,
    /// their resampled copy, and a progressive JPEG's coefficients (libjpeg
    /// keeps them all until the last scan).
    pub(super) fn memory_bytes(&self) -> u64 {
        let (w, h) = self.scaled();
        let pixels = 2 * (w as u64 * h as u64) * if self.gray { 1 } else { 3 };
        let coefficients = if self.progressive {
            self.width as u64 * self.height as u64 * self.samples_x4 / 2
        } else {
            0
        };
        pixels + coefficients
    }
}

/// The JPEG plan, or `None` when libjpeg-turbo cannot give its pixels
/// (ImageMagick's case, which reports what is wrong).
pub(super) fn plan(
    data: &[u8],
    transform: &Transform,
    limits: &Limits,
) -> Result<Option<JpegPlan>, TransformError> {
    // A header TurboJPEG cannot read is ImageMagick's to judge (and report).
    let Ok(header) = JpegHeader::read(Kind::Decompress, data) else {
        return Ok(None);
    };
    let (width, height) = (header.width, header.height);
    if header.exceeds(limits) {
        return Err(TransformError::TooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    let takes = header.precision == 8
        && !header.lossless
        && matches!(
            header.colorspace,
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
    Ok(Some(JpegPlan {
        width,
        height,
        orientation,
        num,
        progressive: header.progressive,
        samples_x4: header.samples_x4,
        gray: header.colorspace == raw::TJCS_TJCS_GRAY,
    }))
}

/// A JPEG's pixels at the planned scale, gray unless colour is kept, and
/// its ICC profile when colour is kept.
pub(super) fn decode(
    data: &[u8],
    plan: &JpegPlan,
    transform: &Transform,
) -> Result<(Pixels, Option<Vec<u8>>), TransformError> {
    let gray = plan.gray || !transform.keep_color;
    let (w, h) = plan.scaled();
    let channels: usize = if gray { 1 } else { 3 };
    let mut out = vec![0u8; w * h * channels];
    let result = tj::with(Kind::Decompress, |handle| {
        // Markers are read only for the ICC profile of a colour output.
        let markers = if gray { 0 } else { 2 };
        handle
            .set(raw::TJPARAM_TJPARAM_SAVEMARKERS, markers)
            .map_err(|e| (false, e))?;
        // SAFETY: `data` is valid for its length during the call.
        let res =
            unsafe { raw::tj3DecompressHeader(handle.0, data.as_ptr(), data.len() as raw::size_t) };
        if res != 0 {
            return Err((false, handle.error()));
        }
        // As libjpeg lists them: in lowest terms.
        let factor = raw::tjscalingfactor {
            num: 1,
            denom: 8 / plan.num,
        };
        // SAFETY: the handle is valid; the factor is one libjpeg supports.
        if unsafe { raw::tj3SetScalingFactor(handle.0, factor) } != 0 {
            return Err((false, handle.error()));
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
            return Err((handle.warned(), handle.error()));
        }
        Ok(if gray { None } else { icc_profile(handle) })
    })
    .unwrap_or_else(|| Err((false, "TurboJPEG could not start".into())));
    let icc = match result {
        Ok(icc) => icc,
        Err((warned, message)) => {
            // A warning leaves whole pixels, unless data is missing.
            if !warned || tj::missing_data(&message) {
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

pub(super) fn encode(
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
    let encoded = tj::with(Kind::Compress, |h| {
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
