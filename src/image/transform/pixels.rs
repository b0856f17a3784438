//! Decoded pixels: turned upright, resampled and cropped, and written as
//! PNG or WebP (JPEG is `jpeg`'s).

use std::cell::RefCell;

use fast_image_resize as fr;

use super::metadata::Kept;
use crate::transform::Geometry;

/// Decoded pixels, `channels` interleaved bytes per pixel (1 gray, 2 gray
/// and alpha, 3 RGB, 4 RGBA).
pub(super) struct Pixels {
    pub(super) data: Vec<u8>,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) channels: u8,
}

/// The pixels turned as EXIF orientation `o` says, so they stand upright.
pub(super) fn orient(p: Pixels, o: u32) -> Pixels {
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
pub(super) fn resample(p: Pixels, geometry: Geometry) -> Result<Pixels, String> {
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

/// `p` as a PNG, with the ICC profile `icc` (an `iCCP` chunk) if given, and
/// the kept metadata: EXIF (`eXIf`), XMP (`iTXt` `XML:com.adobe.xmp`) and
/// comments (`tEXt` `Comment`).
pub(super) fn encode_png(p: &Pixels, icc: Option<&[u8]>, kept: &Kept) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut info = png::Info::with_size(p.width, p.height);
    info.icc_profile = icc.map(std::borrow::Cow::Borrowed);
    info.exif_metadata = kept.exif.as_deref().map(std::borrow::Cow::Borrowed);
    let mut encoder = png::Encoder::with_info(&mut out, info).map_err(|e| e.to_string())?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if let Some(xmp) = &kept.xmp {
        encoder
            .add_itxt_chunk("XML:com.adobe.xmp".into(), text(xmp))
            .map_err(|e| e.to_string())?;
    }
    for c in &kept.comments {
        encoder
            .add_text_chunk("Comment".into(), text(c))
            .map_err(|e| e.to_string())?;
    }
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

/// `p` as a lossy WebP, with the ICC profile `icc` if given and the kept
/// EXIF and XMP (WebP has no place for comments).
pub(super) fn encode_webp(
    p: &Pixels,
    quality: u8,
    icc: Option<&[u8]>,
    kept: &Kept,
) -> Result<Vec<u8>, String> {
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
        let encode = if channels == 4 {
            libwebp_sys::WebPEncodeRGBA
        } else {
            libwebp_sys::WebPEncodeRGB
        };
        let size = encode(
            data.as_ptr(),
            p.width as i32,
            p.height as i32,
            stride,
            f32::from(quality),
            &mut out,
        );
        if size == 0 || out.is_null() {
            return Err("libwebp refused the image".into());
        }
        let bytes = std::slice::from_raw_parts(out, size).to_vec();
        libwebp_sys::WebPFree(out.cast());
        let extras = Extras {
            icc,
            exif: kept.exif.as_deref(),
            xmp: kept.xmp.as_deref(),
        };
        Ok(if extras.any() {
            with_extras(&bytes, p.width, p.height, &extras)
        } else {
            bytes
        })
    }
}

/// What the extended WebP format adds to an image: each with its flag in
/// `VP8X` and a chunk of its own.
struct Extras<'a> {
    icc: Option<&'a [u8]>,
    exif: Option<&'a [u8]>,
    xmp: Option<&'a [u8]>,
}

impl Extras<'_> {
    fn any(&self) -> bool {
        self.icc.is_some() || self.exif.is_some() || self.xmp.is_some()
    }
}

/// A WebP in the extended format: a `VP8X` chunk (made if libwebp wrote
/// the simple format) with the flags of what is added, then `ICCP`, the
/// image's own chunks, `EXIF` and `XMP `, in the order the WebP container
/// spec gives. `webp` is libwebp's own output, so its chunks are well formed.
fn with_extras(webp: &[u8], width: u32, height: u32, extras: &Extras) -> Vec<u8> {
    const ICC_FLAG: u8 = 0x20;
    const EXIF_FLAG: u8 = 0x08;
    const XMP_FLAG: u8 = 0x04;
    let flags = [
        (extras.icc, ICC_FLAG),
        (extras.exif, EXIF_FLAG),
        (extras.xmp, XMP_FLAG),
    ]
    .iter()
    .filter(|(b, _)| b.is_some())
    .fold(0, |f, (_, flag)| f | flag);
    let chunk = |tag: &[u8], body: &[u8]| {
        let mut c = tag.to_vec();
        c.extend_from_slice(&(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    let chunks = &webp[12..];
    let mut body = b"WEBP".to_vec();
    let rest = if chunks.starts_with(b"VP8X") {
        let mut vp8x = chunks[..18].to_vec();
        vp8x[8] |= flags;
        body.extend_from_slice(&vp8x);
        &chunks[18..]
    } else {
        // Flags, three reserved bytes, then the canvas size less one, 24 bits each.
        let mut vp8x = vec![flags, 0, 0, 0];
        vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
        body.extend_from_slice(&chunk(b"VP8X", &vp8x));
        chunks
    };
    if let Some(icc) = extras.icc {
        body.extend_from_slice(&chunk(b"ICCP", icc));
    }
    body.extend_from_slice(rest);
    if let Some(exif) = extras.exif {
        body.extend_from_slice(&chunk(b"EXIF", exif));
    }
    if let Some(xmp) = extras.xmp {
        body.extend_from_slice(&chunk(b"XMP ", xmp));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_icc_profile_goes_into_webp_and_png_where_decoders_find_it() {
        // Any bytes do for the containers, which carry a profile as it is.
        let icc: Vec<u8> = (0..=255u8).cycle().take(601).collect();
        for channels in [3u8, 4] {
            let p = Pixels {
                data: vec![120; 40 * 30 * channels as usize],
                width: 40,
                height: 30,
                channels,
            };
            let webp = encode_webp(&p, 80, Some(&icc), &Kept::default()).unwrap();
            // libwebp (through ImageMagick) still reads the image...
            crate::image::magick::init(&Default::default()).unwrap();
            let wand = magick_rust::MagickWand::new();
            wand.read_image_blob(&webp).unwrap();
            assert_eq!((wand.get_image_width(), wand.get_image_height()), (40, 30));
            // ...whose RIFF size is whole, and whose ICCP chunk follows VP8X,
            // flagged there.
            assert_eq!(
                u32::from_le_bytes(webp[4..8].try_into().unwrap()) as usize + 8,
                webp.len()
            );
            assert_eq!(&webp[12..16], b"VP8X");
            assert_eq!(webp[20] & 0x20, 0x20);
            assert_eq!(&webp[30..34], b"ICCP");
            assert_eq!(&webp[38..38 + icc.len()], &icc[..]);
            let png = encode_png(&p, Some(&icc), &Kept::default()).unwrap();
            let reader = png::Decoder::new(std::io::Cursor::new(png))
                .read_info()
                .unwrap();
            assert_eq!(reader.info().icc_profile.as_deref(), Some(&icc[..]));
        }
    }

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
}
