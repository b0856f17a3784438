//! Lossless grayscale of a JPEG: keep the luma's DCT coefficients, drop the
//! chroma, decode nothing.
//!
//! A baseline or progressive JPEG stores Y, Cb and Cr as separate planes of
//! quantized DCT coefficients. libjpeg-turbo's lossless transform with
//! `TJXOPT_GRAY` writes the Y plane alone as a one-component JPEG: its pixels
//! are bit-exact the source's own luma (`djpeg -grayscale`), with no
//! generation loss, a smaller file, and about a sixth of the CPU of a decode,
//! a colour conversion and an encode. That luma is the JPEG's own, Rec. 601
//! weights on gamma-encoded RGB, where ImageMagick's `Gray` uses Rec. 709.
//!
//! Only what the transform reproduces exactly takes this path: 8-bit,
//! lossy (baseline or progressive, Huffman or arithmetic), YCbCr or grayscale
//! JPEGs. CMYK and YCCK, RGB-coded, 12-bit and lossless JPEGs go to
//! ImageMagick, and so does a JPEG whose EXIF orientation is not a perfect
//! lossless rotation (its size is not a multiple of the 8-pixel block), since
//! the lossless path would have to crop pixels. Metadata is not copied (EXIF,
//! XMP, ICC, comments), an orientation is applied as the transform, and the
//! pixel limits are checked from the header before anything else.
//!
//! TurboJPEG is called through its raw C API (`image::tj`) because the safe
//! wrapper exposes neither the header's sample precision nor the warnings a
//! transform reports, and both decide correctness here.

use turbojpeg::raw;

use crate::image::tj::{self, Handle, JpegHeader, Kind};

use crate::options::Limits;

/// Why the lossless path did not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum LosslessError {
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
}

/// What the header says about a JPEG, for the choice of engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: usize,
    pub height: usize,
    /// Samples per pixel, all components together, times 4: 4 for gray,
    /// 6 for 4:2:0, 8 for 4:2:2, 12 for 4:4:4.
    samples_x4: u64,
    /// The EXIF orientation as a transform.
    op: libc::c_int,
}

impl Header {
    /// What the transform holds in memory: a 16-bit coefficient per sample
    /// of every component (libjpeg reads them all), plus the gray output.
    pub fn memory_bytes(&self) -> u64 {
        let pixels = self.width as u64 * self.height as u64;
        pixels * self.samples_x4 / 2 + pixels / 2
    }
}

/// A JPEG the lossless path can take, or why it cannot (for the log).
pub enum Plan {
    Lossless(Header),
    ImageMagick(&'static str),
}

fn with_handle<T>(f: impl FnOnce(&Handle) -> T) -> Option<T> {
    tj::with(Kind::Transform, f)
}

/// Reads the header and decides whether the lossless path can take `data`,
/// checking the pixel limits first.
pub fn plan(data: &[u8], limits: &Limits) -> Result<Plan, LosslessError> {
    // A header TurboJPEG cannot read is ImageMagick's to judge (and report).
    let header = match JpegHeader::read(Kind::Transform, data) {
        Ok(header) => header,
        Err(why) => return Ok(Plan::ImageMagick(why)),
    };
    let (width, height) = (header.width, header.height);
    if header.exceeds(limits) {
        return Err(LosslessError::TooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
        });
    }
    if header.lossless {
        return Ok(Plan::ImageMagick("a lossless JPEG"));
    }
    if header.precision != 8 {
        return Ok(Plan::ImageMagick("not 8 bits per sample"));
    }
    match header.colorspace {
        raw::TJCS_TJCS_YCbCr | raw::TJCS_TJCS_GRAY => {}
        _ => {
            return Ok(Plan::ImageMagick(
                "not YCbCr or grayscale (CMYK, YCCK or RGB)",
            ));
        }
    }
    let samples_x4 = header.samples_x4;
    let op = match orientation(data) {
        1 => raw::TJXOP_TJXOP_NONE,
        2 => raw::TJXOP_TJXOP_HFLIP,
        3 => raw::TJXOP_TJXOP_ROT180,
        4 => raw::TJXOP_TJXOP_VFLIP,
        5 => raw::TJXOP_TJXOP_TRANSPOSE,
        6 => raw::TJXOP_TJXOP_ROT90,
        7 => raw::TJXOP_TJXOP_TRANSVERSE,
        8 => raw::TJXOP_TJXOP_ROT270,
        _ => raw::TJXOP_TJXOP_NONE,
    } as libc::c_int;
    Ok(Plan::Lossless(Header {
        width,
        height,
        samples_x4,
        op,
    }))
}

/// The EXIF orientation (1 to 8), 1 when there is none.
pub(crate) fn orientation(data: &[u8]) -> u32 {
    exif_segment(data)
        .and_then(|tiff| exif::Reader::new().read_raw(tiff.to_vec()).ok())
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?
                .value
                .get_uint(0)
        })
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1)
}

/// The TIFF body of the first EXIF APP1 segment. The exif crate's own JPEG
/// reader looks for the segment by reading on through the entropy-coded
/// data when there is none, copying the whole file as it goes: for a photo
/// without EXIF, a scan (and a copy) of every byte on the runtime thread.
fn exif_segment(data: &[u8]) -> Option<&[u8]> {
    const EXIF_ID: &[u8] = b"Exif\0\0";
    segments(data)
        .find(|(marker, body)| *marker == 0xE1 && body.starts_with(EXIF_ID))
        .map(|(_, body)| &body[EXIF_ID.len()..])
}

/// The marker segments before the first scan, as (marker, body without
/// its length), found by walking the markers; never past the first scan,
/// whose entropy-coded data holds no metadata.
pub(crate) fn segments(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = if data.starts_with(&[0xFF, 0xD8]) {
        2
    } else {
        data.len()
    };
    std::iter::from_fn(move || {
        loop {
            // Fill bytes (0xFF) may precede a marker.
            while *data.get(at)? == 0xFF && *data.get(at + 1)? == 0xFF {
                at += 1;
            }
            if *data.get(at)? != 0xFF {
                return None;
            }
            let marker = *data.get(at + 1)?;
            match marker {
                // Markers without a length: TEM, RSTn.
                0x01 | 0xD0..=0xD7 => {
                    at += 2;
                    continue;
                }
                // The first scan, or the end: metadata comes before either.
                0xDA | 0xD9 => return None,
                _ => {}
            }
            // The length counts its own two bytes.
            let len = u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?]) as usize;
            let segment = data.get(at + 4..(at + 2 + len).max(at + 4))?;
            at += 2 + len.max(2);
            return Some((marker, segment));
        }
    })
}

/// The luma of `data` as a grayscale JPEG, orientation applied; `None` when
/// the orientation's rotation is not perfect for this size (ImageMagick's case).
pub fn gray(data: &[u8], header: &Header) -> Result<Option<Vec<u8>>, LosslessError> {
    let result = with_handle(|h| {
        let options = raw::TJXOPT_GRAY
            | raw::TJXOPT_COPYNONE
            | if header.op == raw::TJXOP_TJXOP_NONE as libc::c_int {
                0
            } else {
                raw::TJXOPT_PERFECT
            };
        let transform = raw::tjtransform {
            r: raw::tjregion {
                x: 0,
                y: 0,
                w: 0,
                h: 0,
            },
            op: header.op,
            options: options as libc::c_int,
            data: std::ptr::null_mut(),
            customFilter: None,
        };
        let mut out: *mut libc::c_uchar = std::ptr::null_mut();
        let mut out_len: raw::size_t = 0;
        // SAFETY: input valid for its length; TurboJPEG allocates `out`,
        // which is copied, then freed with tj3Free exactly once.
        let res = unsafe {
            raw::tj3Transform(
                h.0,
                data.as_ptr(),
                data.len() as raw::size_t,
                1,
                &mut out,
                &mut out_len,
                &transform,
            )
        };
        let bytes = (!out.is_null()).then(|| {
            // SAFETY: TurboJPEG wrote `out_len` bytes at `out`.
            let v = unsafe { std::slice::from_raw_parts(out, out_len as usize) }.to_vec();
            // SAFETY: `out` was allocated by TurboJPEG, is freed once, and
            // its bytes were copied above.
            unsafe { raw::tj3Free(out.cast()) };
            v
        });
        if res == 0 {
            return Ok(bytes);
        }
        Err((h.warned(), h.error(), bytes))
    });
    match result {
        None => Err(LosslessError::Corrupt("TurboJPEG could not start".into())),
        Some(Ok(Some(bytes))) => Ok(Some(bytes)),
        Some(Ok(None)) => Err(LosslessError::Corrupt("TurboJPEG returned nothing".into())),
        Some(Err((warned, message, bytes))) => {
            if message.contains("not perfect") {
                return Ok(None);
            }
            // A warning: the output exists. Missing data is the failure it is.
            match bytes {
                Some(bytes) if warned && !tj::missing_data(&message) => {
                    tracing::debug!(warning = %message, "TurboJPEG warning tolerated");
                    Ok(Some(bytes))
                }
                _ => Err(LosslessError::Corrupt(message)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Real JPEGs from libjpeg-turbo's own `cjpeg`, checked against its own
    //! `djpeg -grayscale`: the output's pixels must be the source's luma, byte
    //! for byte.

    use std::process::Command;

    use super::*;

    /// A photo-like PPM, width x height.
    fn ppm(width: usize, height: usize, seed: u32) -> Vec<u8> {
        let mut out = format!("P6\n{width} {height}\n255\n").into_bytes();
        for y in 0..height {
            for x in 0..width {
                let v = |k: u32| -> u8 {
                    let t = (x as u32 * (3 + k) + y as u32 * (5 + 2 * k) + seed * 17) % 512;
                    (if t > 255 { 511 - t } else { t }) as u8
                };
                out.extend([v(0), v(1).wrapping_add((x * y) as u8 / 8), v(2)]);
            }
        }
        out
    }

    fn run(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("libjpeg-turbo-progs (cjpeg, djpeg) is installed by scripts/setup.sh");
        // Fed from another thread: a tool that writes while it reads would
        // otherwise block on a full pipe while this one blocks feeding it.
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "{cmd:?}");
        out.stdout
    }

    fn cjpeg(args: &[&str], width: usize, height: usize, seed: u32) -> Vec<u8> {
        run(Command::new("cjpeg").args(args), &ppm(width, height, seed))
    }

    fn djpeg(args: &[&str], jpeg: &[u8]) -> Vec<u8> {
        run(Command::new("djpeg").args(args).arg("-pnm"), jpeg)
    }

    fn lossless_gray(jpeg: &[u8]) -> Vec<u8> {
        let Plan::Lossless(header) = plan(jpeg, &Limits::default()).unwrap() else {
            panic!("takes the lossless path")
        };
        gray(jpeg, &header).unwrap().expect("a perfect transform")
    }

    #[test]
    fn the_output_is_the_sources_own_luma_for_every_kind_of_jpeg() {
        let cases: [(&str, &[&str], usize, usize); 8] = [
            ("4:2:0", &["-quality", "80", "-sample", "2x2"], 640, 480),
            ("4:2:2", &["-quality", "85", "-sample", "2x1"], 333, 250),
            ("4:4:4", &["-quality", "90", "-sample", "1x1"], 301, 199),
            ("progressive", &["-quality", "80", "-progressive"], 517, 389),
            (
                "restart markers",
                &["-quality", "75", "-restart", "2"],
                250,
                170,
            ),
            ("arithmetic", &["-quality", "80", "-arithmetic"], 96, 64),
            ("odd sizes", &["-quality", "80", "-sample", "2x2"], 17, 13),
            ("grayscale", &["-quality", "80", "-grayscale"], 200, 150),
        ];
        for (i, (name, args, w, h)) in cases.iter().enumerate() {
            let source = cjpeg(args, *w, *h, i as u32);
            let out = lossless_gray(&source);
            let header = turbojpeg::read_header(&out).unwrap();
            assert_eq!(header.colorspace, turbojpeg::Colorspace::Gray, "{name}");
            assert_eq!((header.width, header.height), (*w, *h), "{name}");
            assert_eq!(
                djpeg(&[], &out),
                djpeg(&["-grayscale"], &source),
                "{name}: the pixels are the source's luma"
            );
        }
    }

    #[test]
    fn the_exif_segment_is_found_among_others_and_never_after_the_scan() {
        let plain = cjpeg(&["-quality", "80"], 48, 32, 7);
        assert_eq!(exif_segment(&plain), None);
        assert_eq!(orientation(&plain), 1);
        let rotated = with_orientation(&plain, 6);
        assert_eq!(orientation(&rotated), 6);
        // After a JFIF APP0 and an XMP APP1, as cameras and editors write them.
        let mut xmp = vec![0xFF, 0xE1];
        let body = b"http://ns.adobe.com/xap/1.0/\0<x/>";
        xmp.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        xmp.extend_from_slice(body);
        let mut later = rotated[..2].to_vec();
        later.extend_from_slice(&xmp);
        later.extend_from_slice(&rotated[2..]);
        assert_eq!(orientation(&later), 6);
        // Bytes after the first scan are entropy-coded data, never EXIF.
        let sos = plain.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut inside = plain[..sos + 2].to_vec();
        inside.extend_from_slice(&with_orientation(&plain, 6)[2..]);
        assert_eq!(orientation(&inside), 1);
        // Cut short anywhere, the walk ends without a panic.
        for cut in 0..rotated.len().min(64) {
            let _ = orientation(&rotated[..cut]);
        }
    }

    /// `source` with an APP1 EXIF block holding only `orientation` after SOI.
    fn with_orientation(source: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]);
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let len = (app1.len() + 2) as u16;
        let mut out = source[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&source[2..]);
        out
    }

    /// A PGM's pixels turned 90 degrees clockwise, as a PGM.
    fn rotate_pgm_90(pgm: &[u8]) -> Vec<u8> {
        let text_end = {
            let mut fields = 0;
            let mut i = 0;
            while fields < 4 {
                while pgm[i].is_ascii_whitespace() {
                    i += 1;
                }
                while !pgm[i].is_ascii_whitespace() {
                    i += 1;
                }
                fields += 1;
            }
            i + 1
        };
        let header = std::str::from_utf8(&pgm[..text_end]).unwrap();
        let nums: Vec<usize> = header
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        let (w, h) = (nums[0], nums[1]);
        let px = &pgm[text_end..];
        let mut out = format!("P5\n{h} {w}\n255\n").into_bytes();
        for y in 0..w {
            for x in 0..h {
                out.push(px[(h - 1 - x) * w + y]);
            }
        }
        out
    }

    #[test]
    fn an_exif_rotation_is_applied_losslessly_and_the_metadata_dropped() {
        // 64x48: whole 8x8 blocks, so a rotation is perfect.
        let plain = cjpeg(&["-quality", "80", "-sample", "2x2"], 64, 48, 7);
        let rotated = with_orientation(&plain, 6);
        let out = lossless_gray(&rotated);
        let header = turbojpeg::read_header(&out).unwrap();
        assert_eq!((header.width, header.height), (48, 64));
        // Bit for bit what libjpeg-turbo's own lossless tool makes.
        let reference = run(
            Command::new("jpegtran").args(["-grayscale", "-rotate", "90", "-copy", "none"]),
            &plain,
        );
        assert_eq!(out, reference, "the same as jpegtran -grayscale -rotate 90");
        // Decoded, it is the source's luma turned: a turn in the DCT domain is
        // exact, but the decoder's integer IDCT rounds a transposed block a
        // little differently, so a pixel may differ by one level.
        let (got, want) = (
            djpeg(&[], &out),
            rotate_pgm_90(&djpeg(&["-grayscale"], &plain)),
        );
        assert_eq!(got.len(), want.len());
        let off: Vec<u8> = got.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).collect();
        assert!(off.iter().all(|&d| d <= 1), "at most one level off");
        assert!(
            off.iter().filter(|&&d| d > 0).count() * 20 < off.len(),
            "and only in a few pixels"
        );
        assert_eq!(orientation(&out), 1, "no EXIF left");
        assert!(!out.windows(4).any(|w| w == b"Exif"));
    }

    #[test]
    fn an_imperfect_rotation_and_other_kinds_go_to_imagemagick() {
        // 60x45 is not whole blocks: rotating would crop pixels.
        let odd = with_orientation(&cjpeg(&["-quality", "80"], 60, 45, 3), 6);
        let Plan::Lossless(header) = plan(&odd, &Limits::default()).unwrap() else {
            panic!("the header is fine")
        };
        assert!(
            gray(&odd, &header).unwrap().is_none(),
            "left to ImageMagick"
        );
        // An RGB-coded JPEG (Adobe transform 0) has no luma plane to keep.
        let rgb = cjpeg(&["-rgb", "-quality", "80"], 32, 32, 4);
        assert!(matches!(
            plan(&rgb, &Limits::default()).unwrap(),
            Plan::ImageMagick(_)
        ));
        // 12-bit JPEGs take the same branch (precision != 8); Debian 12's
        // cjpeg (libjpeg-turbo 2.1) cannot write one to test it with.
    }

    #[test]
    fn the_memory_estimate_follows_the_subsampling() {
        let bytes = |args: &[&str]| {
            let Plan::Lossless(h) = plan(&cjpeg(args, 640, 480, 1), &Limits::default()).unwrap()
            else {
                panic!("lossless")
            };
            h.memory_bytes()
        };
        let pixels = 640 * 480;
        // Two bytes a coefficient, every sample, plus half a byte a pixel of output.
        assert_eq!(bytes(&["-sample", "2x2"]), pixels * 3 + pixels / 2);
        assert_eq!(bytes(&["-sample", "1x1"]), pixels * 6 + pixels / 2);
        assert_eq!(bytes(&["-grayscale"]), pixels * 2 + pixels / 2);
    }

    #[test]
    fn a_thread_that_keeps_blocks_reuses_them_and_the_output_is_unchanged() {
        // Through TurboJPEG itself, so this fails if the linker took
        // libjpeg-turbo's own jmemnobs.o instead of `jmem`.
        let a = cjpeg(&["-quality", "80", "-sample", "2x2"], 640, 480, 1);
        let b = cjpeg(&["-quality", "80", "-sample", "2x2"], 640, 480, 2);
        let other = cjpeg(&["-quality", "80", "-sample", "1x1"], 320, 200, 3);
        let plain: Vec<_> = [&a, &b, &other].map(|j| lossless_gray(j)).into();
        std::thread::spawn(move || {
            use crate::image::jmem;
            jmem::keep_blocks(64 << 20);
            let before = jmem::reused();
            let mut outs = Vec::new();
            for jpeg in [&a, &b, &other, &a] {
                outs.push(lossless_gray(jpeg));
                jmem::settle();
                if outs.len() == 2 {
                    assert!(
                        jmem::reused() > before,
                        "the second image of the same size reuses the first's blocks"
                    );
                }
            }
            assert_eq!(
                outs[..3],
                plain[..],
                "the same bytes as with malloc and free"
            );
            assert_eq!(outs[3], plain[0]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_memory_limit_fails_the_transform_as_jmemnobs_does() {
        let source = cjpeg(&["-quality", "80", "-sample", "1x1"], 1200, 1000, 4);
        let Plan::Lossless(header) = plan(&source, &Limits::default()).unwrap() else {
            panic!("takes the lossless path")
        };
        std::thread::spawn(move || {
            // SAFETY: this thread's handle is valid; 1 MiB is far below the
            // 7 MB of coefficients, so libjpeg asks for a backing store.
            with_handle(|h| unsafe {
                raw::tj3Set(h.0, raw::TJPARAM_TJPARAM_MAXMEMORY as libc::c_int, 1)
            });
            match gray(&source, &header) {
                Err(LosslessError::Corrupt(message)) => {
                    assert!(message.contains("Memory limit exceeded"), "{message}")
                }
                other => panic!("{:?}", other.map(|o| o.map(|v| v.len()))),
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn limits_are_checked_from_the_header_and_truncation_is_corrupt() {
        let source = cjpeg(&["-quality", "80"], 300, 200, 9);
        let small = Limits {
            max_pixels: 10_000,
            ..Limits::default()
        };
        assert!(matches!(
            plan(&source, &small),
            Err(LosslessError::TooLarge { .. })
        ));
        let cut = &source[..source.len() / 2];
        let Plan::Lossless(header) = plan(cut, &Limits::default()).unwrap() else {
            panic!("the header is whole")
        };
        assert!(matches!(gray(cut, &header), Err(LosslessError::Corrupt(_))));
    }
}
