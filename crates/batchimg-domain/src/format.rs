//! The raster formats batchimg accepts, recognised by their magic bytes.
//!
//! A server's `Content-Type` is only a claim; the first bytes of the body decide.
//! Anything not listed here (SVG, PDF, PostScript, HTML error pages…)
//! is refused before ImageMagick sees it, which is the first of two guards; the
//! second is the coder policy that batchimg applies to ImageMagick.

use std::fmt;

/// An image format batchimg accepts. HEIC and AVIF are read (through
/// libheif) but never written: they always go through the transform.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Webp,
    Tiff,
    Bmp,
    Heic,
    Avif,
}

impl ImageFormat {
    /// Every accepted format, in the order the README lists them.
    pub const ALL: [ImageFormat; 8] = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Webp,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
        ImageFormat::Heic,
        ImageFormat::Avif,
    ];

    /// Whether images of this format can only be read: they always take
    /// the transform, which writes another format.
    pub fn needs_transform(self) -> bool {
        matches!(self, ImageFormat::Heic | ImageFormat::Avif)
    }

    /// Bytes needed to tell every accepted format apart.
    pub const SNIFF_LEN: usize = 12;

    /// Recognises a format from the first bytes of a file.
    pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
        match head {
            [0xFF, 0xD8, 0xFF, ..] => Some(ImageFormat::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(ImageFormat::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(ImageFormat::Gif),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Some(ImageFormat::Webp),
            // Classic and BigTIFF, both byte orders.
            [b'I', b'I', 0x2A | 0x2B, 0x00, ..] | [b'M', b'M', 0x00, 0x2A | 0x2B, ..] => {
                Some(ImageFormat::Tiff)
            }
            // "BM" alone is too weak; the DIB header size at offset 14 is not in
            // SNIFF_LEN, so check that the reserved fields (bytes 6..10) are zero.
            [b'B', b'M', _, _, _, _, 0, 0, 0, 0, ..] => Some(ImageFormat::Bmp),
            // ISO BMFF: a `ftyp` box whose major brand names the codec.
            [
                _,
                _,
                _,
                _,
                b'f',
                b't',
                b'y',
                b'p',
                b'a',
                b'v',
                b'i',
                b'f' | b's',
                ..,
            ] => Some(ImageFormat::Avif),
            [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] => {
                let brand = brand.get(..4)?;
                [
                    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
                ]
                .contains(&brand.try_into().ok()?)
                .then_some(ImageFormat::Heic)
            }
            _ => None,
        }
    }

    /// The ImageMagick coder name, used both to encode and in the security policy.
    pub fn coder(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::Gif => "GIF",
            ImageFormat::Webp => "WEBP",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Heic => "HEIC",
            ImageFormat::Avif => "AVIF",
        }
    }

    /// File extension for local files and object keys.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::Webp => "webp",
            ImageFormat::Tiff => "tif",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Heic => "heic",
            ImageFormat::Avif => "avif",
        }
    }

    /// The `Content-Type` stored with the uploaded object.
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Tiff => "image/tiff",
            ImageFormat::Bmp => "image/bmp",
            ImageFormat::Heic => "image/heic",
            ImageFormat::Avif => "image/avif",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.coder())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_accepted_format() {
        let cases: [(&[u8], ImageFormat); 10] = [
            (b"\0\0\0\x1cftypheic\0\0", ImageFormat::Heic),
            (b"\0\0\0\x18ftypmif1\0\0", ImageFormat::Heic),
            (b"\0\0\0\x1cftypavif\0\0", ImageFormat::Avif),
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF\0", ImageFormat::Jpeg),
            (b"\x89PNG\r\n\x1a\n\0\0\0\x0d", ImageFormat::Png),
            (b"GIF89a\x01\0\x01\0\0\0", ImageFormat::Gif),
            (b"RIFF\x24\0\0\0WEBPVP8 ", ImageFormat::Webp),
            (b"II*\0\x08\0\0\0\0\0\0\0", ImageFormat::Tiff),
            (b"MM\0*\0\0\0\x08\0\0\0\0", ImageFormat::Tiff),
            (b"BM\x36\0\x0c\0\0\0\0\0\x36\0", ImageFormat::Bmp),
        ];
        for (head, want) in cases {
            assert_eq!(ImageFormat::sniff(head), Some(want), "{head:?}");
        }
    }

    #[test]
    fn refuses_look_alikes_and_dangerous_formats() {
        let cases: [&[u8]; 8] = [
            b"<!DOCTYPE html><html>",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\">",
            b"%PDF-1.7\n%\xE2\xE3",
            b"%!PS-Adobe-3.0",
            b"\0\0\0\x1cftypmp42\0\0",
            b"RIFF\x24\0\0\0WAVEfmt ",
            b"BM this is text",
            b"\xFF\xD8",
        ];
        for head in cases {
            assert_eq!(ImageFormat::sniff(head), None, "{head:?}");
        }
    }
}
