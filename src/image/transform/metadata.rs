//! `--keep-metadata`: a JPEG source's EXIF, XMP and comments, for any
//! output, with the EXIF orientation reset now that the pixels stand upright.

use crate::image::lossless;

const EXIF_ID: &[u8] = b"Exif\0\0";
const XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// The metadata a JPEG source carries, as each container stores it.
#[derive(Default)]
pub(super) struct Kept {
    /// The EXIF TIFF body, its orientation reset to 1.
    pub(super) exif: Option<Vec<u8>>,
    /// The XMP packet.
    pub(super) xmp: Option<Vec<u8>>,
    pub(super) comments: Vec<Vec<u8>>,
}

impl Kept {
    /// What `data`, a JPEG, carries: the first EXIF and XMP segments and
    /// every comment.
    pub(super) fn from_jpeg(data: &[u8]) -> Kept {
        let mut kept = Kept::default();
        for (marker, segment) in lossless::segments(data) {
            match marker {
                0xFE => kept.comments.push(segment.to_vec()),
                0xE1 if kept.exif.is_none() && segment.starts_with(EXIF_ID) => {
                    let mut tiff = segment[EXIF_ID.len()..].to_vec();
                    reset_orientation(&mut tiff);
                    kept.exif = Some(tiff);
                }
                0xE1 if kept.xmp.is_none() && segment.starts_with(XMP_ID) => {
                    kept.xmp = Some(segment[XMP_ID.len()..].to_vec());
                }
                _ => {}
            }
        }
        kept
    }

    /// The JPEG marker segments that hold it: APP1 EXIF, APP1 XMP, COM.
    pub(super) fn jpeg_segments(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut segment = |marker: u8, parts: &[&[u8]]| {
            let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 2;
            // A segment's length is 16 bits; a larger one was not read whole either.
            if len <= usize::from(u16::MAX) {
                out.extend_from_slice(&[0xFF, marker]);
                out.extend_from_slice(&(len as u16).to_be_bytes());
                for p in parts {
                    out.extend_from_slice(p);
                }
            }
        };
        if let Some(exif) = &self.exif {
            segment(0xE1, &[EXIF_ID, exif]);
        }
        if let Some(xmp) = &self.xmp {
            segment(0xE1, &[XMP_ID, xmp]);
        }
        for c in &self.comments {
            segment(0xFE, &[c]);
        }
        out
    }
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
