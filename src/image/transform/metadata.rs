//! `--keep-metadata`: a JPEG source's EXIF, XMP and comment segments, for a
//! JPEG output, with the EXIF orientation reset now that the pixels stand
//! upright.

use crate::image::lossless;

/// A JPEG's EXIF (orientation reset to 1, as the pixels are upright now),
/// XMP and comment segments, whole, for `--keep-metadata`.
pub(super) fn kept_segments(data: &[u8]) -> Vec<u8> {
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
