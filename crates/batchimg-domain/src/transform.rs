//! The transform a run applies besides grayscale: a size, a fit, an output
//! format and quality, colour kept or not, metadata kept or not.
//!
//! It is part of the work's identity: its [`Transform::fingerprint`] goes
//! into every object key and URL-index id, so two runs with different
//! transforms never take each other's objects, and a rerun with the same one
//! finds its own. With no transform flag the fingerprint is `None` and keys
//! are what they always were. The geometry ([`Transform::geometry`]) is pure
//! arithmetic here, so the engines and the tests agree on every size.

use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;

/// `--resize WxH`: a box; either side may be left out (`512x`, `x512`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl Size {
    /// The largest side `--resize` accepts: far beyond any thumbnail, and
    /// below the pixel limits' own 20,000.
    pub const MAX_SIDE: u32 = 20_000;

    /// Reads `WxH`, `Wx` or `xH` (also `W` alone, a width).
    pub fn parse(text: &str) -> Result<Size, String> {
        let spec = text.trim();
        let (w, h) = match spec.split_once(['x', 'X']) {
            Some((w, h)) => (w.trim(), h.trim()),
            None => (spec, ""),
        };
        let side = |s: &str, which: &str| -> Result<Option<u32>, String> {
            if s.is_empty() {
                return Ok(None);
            }
            match s.parse::<u32>() {
                Ok(0) => Err(format!("--resize {text:?}: the {which} must be at least 1")),
                Ok(n) if n > Size::MAX_SIDE => Err(format!(
                    "--resize {text:?}: the {which} must be at most {}",
                    Size::MAX_SIDE
                )),
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(format!(
                    "--resize {text:?}: expected WxH, Wx or xH in pixels, e.g. 512x512 or 512x"
                )),
            }
        };
        let size = Size {
            width: side(w, "width")?,
            height: side(h, "height")?,
        };
        if size.width.is_none() && size.height.is_none() {
            return Err(format!(
                "--resize {text:?}: give a width, a height or both, e.g. 512x512, 512x or x512"
            ));
        }
        Ok(size)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |s: Option<u32>| s.map(|n| n.to_string()).unwrap_or_default();
        write!(f, "{}x{}", side(self.width), side(self.height))
    }
}

/// How an image meets the `--resize` box (`--fit`), as imgproxy and
/// libvips name the modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Fit {
    /// Fit inside the box, keeping the aspect ratio.
    #[default]
    Contain,
    /// Fill the box, keeping the aspect ratio, and crop the overflow from the centre.
    Cover,
    /// Stretch to the box exactly.
    Fill,
}

impl Fit {
    fn name(self) -> &'static str {
        match self {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
        }
    }
}

/// The output's format (`--format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OutputFormat {
    /// The input's format where the transform can write it (JPEG, PNG,
    /// WebP); PNG for GIF, TIFF and BMP; JPEG for HEIC and AVIF.
    #[default]
    Same,
    Jpeg,
    Png,
    Webp,
}

impl OutputFormat {
    fn name(self) -> &'static str {
        match self {
            OutputFormat::Same => "same",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
        }
    }
}

/// The quality of JPEG and WebP outputs when `--quality` is not given.
pub const DEFAULT_QUALITY: u8 = 85;

/// What a run does to each image besides (or instead of) grayscale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transform {
    /// `--resize`: the box the output fits; `None` keeps the size.
    pub resize: Option<Size>,
    /// `--fit`: how the image meets the box.
    pub fit: Fit,
    /// `--upscale`: enlarge an image smaller than the box.
    pub upscale: bool,
    /// `--format`.
    pub format: OutputFormat,
    /// `--quality`, 1-100, for JPEG and WebP outputs; `None`: [`DEFAULT_QUALITY`].
    pub quality: Option<u8>,
    /// `--keep-color`: no grayscale.
    pub keep_color: bool,
    /// `--keep-metadata`: keep EXIF (orientation reset), XMP and comments.
    pub keep_metadata: bool,
}

/// The size an image is resampled to, and the region of that size kept
/// (`cover` crops the overflow from the centre).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// The whole image resampled to this size…
    pub scaled: (u32, u32),
    /// …and this region of it, `(left, top, width, height)`, is the output.
    pub crop: (u32, u32, u32, u32),
}

impl Geometry {
    /// The output's size.
    pub fn output(&self) -> (u32, u32) {
        (self.crop.2, self.crop.3)
    }
}

impl Transform {
    /// Whether any transform flag was given; with none, images take the
    /// grayscale engines exactly as before.
    pub fn is_none(&self) -> bool {
        *self == Transform::default()
    }

    /// Checks the combination of flags; each value was checked when parsed.
    pub fn check(&self) -> Result<(), String> {
        if self.resize.is_none() {
            if self.fit != Fit::Contain {
                return Err("--fit needs --resize: there is no box to fit".into());
            }
            if self.upscale {
                return Err("--upscale needs --resize: there is no box to enlarge to".into());
            }
        }
        if let Some(q) = self.quality
            && !(1..=100).contains(&q)
        {
            return Err(format!("--quality {q}: expected 1 to 100"));
        }
        if self.format == OutputFormat::Png && self.quality.is_some() {
            return Err("--quality applies to JPEG and WebP; PNG is lossless".into());
        }
        Ok(())
    }

    /// The quality JPEG and WebP outputs are encoded at.
    pub fn quality(&self) -> u8 {
        self.quality.unwrap_or(DEFAULT_QUALITY)
    }

    /// The format an input of `input`'s format is written in.
    pub fn output_format(&self, input: ImageFormat) -> ImageFormat {
        match self.format {
            OutputFormat::Jpeg => ImageFormat::Jpeg,
            OutputFormat::Png => ImageFormat::Png,
            OutputFormat::Webp => ImageFormat::Webp,
            OutputFormat::Same => match input {
                ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Webp => input,
                ImageFormat::Gif | ImageFormat::Tiff | ImageFormat::Bmp => ImageFormat::Png,
                ImageFormat::Heic | ImageFormat::Avif => ImageFormat::Jpeg,
            },
        }
    }

    /// A canonical text of the transform, or `None` when there is none
    /// (then keys are what they always were). Every field that changes the
    /// output is in it, so different transforms never share a key. A
    /// cross-version contract, like the keys it goes into.
    pub fn fingerprint(&self) -> Option<String> {
        (!self.is_none()).then(|| self.canonical())
    }

    /// Whether an input of `format` goes through the transform: always
    /// when one was asked for, and for the formats only it can read.
    pub fn applies_to(&self, format: ImageFormat) -> bool {
        !self.is_none() || format.needs_transform()
    }

    /// The canonical text [`Transform::fingerprint`] gives, also for no
    /// transform (what a HEIC or AVIF input gets then).
    pub fn canonical(&self) -> String {
        let mut parts = vec!["transform v1".to_string()];
        if let Some(size) = self.resize {
            parts.push(format!("resize={size}"));
            parts.push(format!("fit={}", self.fit.name()));
            if self.upscale {
                parts.push("upscale".into());
            }
        }
        parts.push(format!("format={}", self.format.name()));
        parts.push(format!("quality={}", self.quality()));
        parts.push(if self.keep_color { "color" } else { "gray" }.into());
        if self.keep_metadata {
            parts.push("metadata".into());
        }
        parts.join("\n")
    }

    /// Where an upright image of `width` x `height` goes. Never enlarges
    /// without `upscale`; every side is at least one pixel.
    pub fn geometry(&self, width: u32, height: u32) -> Geometry {
        let (w, h) = (width.max(1), height.max(1));
        let whole = |sw: u32, sh: u32| Geometry {
            scaled: (sw, sh),
            crop: (0, 0, sw, sh),
        };
        let Some(size) = self.resize else {
            return whole(w, h);
        };
        let (fw, fh) = (f64::from(w), f64::from(h));
        let round = |v: f64| (v.round() as u32).max(1);
        let limit = |scale: f64| if self.upscale { scale } else { scale.min(1.0) };
        match (size.width, size.height) {
            // One side: the other follows the aspect ratio, whatever the fit.
            (Some(bw), None) => {
                let s = limit(f64::from(bw) / fw);
                whole(round(fw * s), round(fh * s))
            }
            (None, Some(bh)) => {
                let s = limit(f64::from(bh) / fh);
                whole(round(fw * s), round(fh * s))
            }
            (None, None) => whole(w, h),
            (Some(bw), Some(bh)) => {
                let (sx, sy) = (f64::from(bw) / fw, f64::from(bh) / fh);
                match self.fit {
                    Fit::Contain => {
                        // `s` is at most the binding side's ratio, so no
                        // side rounds past the box.
                        let s = limit(sx.min(sy));
                        whole(round(fw * s), round(fh * s))
                    }
                    Fit::Fill => {
                        let (ow, oh) = if self.upscale {
                            (bw, bh)
                        } else {
                            (bw.min(w), bh.min(h))
                        };
                        whole(ow, oh)
                    }
                    Fit::Cover => {
                        let s = limit(sx.max(sy));
                        let (sw, sh) = (round(fw * s), round(fh * s));
                        let (cw, ch) = (bw.min(sw), bh.min(sh));
                        Geometry {
                            scaled: (sw, sh),
                            crop: ((sw - cw) / 2, (sh - ch) / 2, cw, ch),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(resize: &str, fit: Fit, upscale: bool) -> Transform {
        Transform {
            resize: Some(Size::parse(resize).unwrap()),
            fit,
            upscale,
            ..Transform::default()
        }
    }

    #[test]
    fn sizes_parse_and_bad_ones_are_refused() {
        let s = |w, h| Size {
            width: w,
            height: h,
        };
        assert_eq!(Size::parse("512x384").unwrap(), s(Some(512), Some(384)));
        assert_eq!(Size::parse("512x").unwrap(), s(Some(512), None));
        assert_eq!(Size::parse("x512").unwrap(), s(None, Some(512)));
        assert_eq!(Size::parse("640").unwrap(), s(Some(640), None));
        for bad in ["0x0", "x", "", "0x10", "axb", "-5x5", "20001x", "5x5x5"] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Size::parse("x512").unwrap().to_string(), "x512");
    }

    #[test]
    fn contain_fits_inside_and_never_enlarges_by_default() {
        let c = |r, w, h| t(r, Fit::Contain, false).geometry(w, h).output();
        assert_eq!(c("512x512", 4000, 3000), (512, 384));
        assert_eq!(c("512x512", 3000, 4000), (384, 512));
        assert_eq!(c("512x512", 4001, 2999), (512, 384));
        assert_eq!(c("512x", 1000, 10), (512, 5));
        assert_eq!(c("x100", 1000, 3), (1000, 3), "never enlarged");
        assert_eq!(c("512x512", 300, 200), (300, 200), "never enlarged");
        assert_eq!(c("100x100", 10_000, 1), (100, 1), "at least a pixel");
        let up = t("512x512", Fit::Contain, true).geometry(300, 200);
        assert_eq!(up.output(), (512, 341));
    }

    #[test]
    fn cover_fills_the_box_and_crops_from_the_centre() {
        let g = t("512x512", Fit::Cover, false).geometry(4000, 3000);
        assert_eq!(g.scaled, (683, 512));
        assert_eq!(g.crop, (85, 0, 512, 512));
        let g = t("300x200", Fit::Cover, false).geometry(1001, 3001);
        assert_eq!(g.scaled, (300, 899));
        assert_eq!(g.crop, (0, 349, 300, 200));
        // Smaller than the box: not enlarged, cropped to the box where it overflows.
        let g = t("512x512", Fit::Cover, false).geometry(800, 300);
        assert_eq!(g.scaled, (800, 300));
        assert_eq!(g.crop, (144, 0, 512, 300));
    }

    #[test]
    fn fill_stretches_to_the_box() {
        assert_eq!(
            t("512x512", Fit::Fill, false).geometry(4000, 3000).output(),
            (512, 512)
        );
        assert_eq!(
            t("512x512", Fit::Fill, false).geometry(300, 4000).output(),
            (300, 512)
        );
        assert_eq!(
            t("512x512", Fit::Fill, true).geometry(300, 200).output(),
            (512, 512)
        );
    }

    #[test]
    fn flags_that_need_another_are_refused() {
        let fit = Transform {
            fit: Fit::Cover,
            ..Transform::default()
        };
        assert!(fit.check().unwrap_err().contains("--fit needs --resize"));
        let up = Transform {
            upscale: true,
            ..Transform::default()
        };
        assert!(up.check().is_err());
        for q in [0, 101] {
            let bad = Transform {
                quality: Some(q),
                ..Transform::default()
            };
            assert!(bad.check().is_err(), "{q}");
        }
        assert!(t("512x", Fit::Cover, true).check().is_ok());
    }

    #[test]
    fn the_output_format_follows_the_flag_and_the_input() {
        let same = Transform {
            keep_color: true,
            ..Transform::default()
        };
        assert_eq!(same.output_format(ImageFormat::Jpeg), ImageFormat::Jpeg);
        assert_eq!(same.output_format(ImageFormat::Gif), ImageFormat::Png);
        assert_eq!(same.output_format(ImageFormat::Heic), ImageFormat::Jpeg);
        let webp = Transform {
            format: OutputFormat::Webp,
            ..Transform::default()
        };
        assert_eq!(webp.output_format(ImageFormat::Png), ImageFormat::Webp);
    }

    #[test]
    fn the_fingerprint_is_pinned() {
        // A silent change here would make every transformed object look new.
        assert_eq!(Transform::default().fingerprint(), None);
        let thumb = Transform {
            quality: Some(80),
            format: OutputFormat::Webp,
            keep_color: true,
            ..t("512x", Fit::Contain, false)
        };
        assert_eq!(
            thumb.fingerprint().unwrap(),
            "transform v1\nresize=512x\nfit=contain\nformat=webp\nquality=80\ncolor"
        );
        let gray = t("300x200", Fit::Cover, true);
        assert_eq!(
            gray.fingerprint().unwrap(),
            "transform v1\nresize=300x200\nfit=cover\nupscale\nformat=same\nquality=85\ngray"
        );
        // The default quality and an explicit 85 are the same work.
        let q85 = Transform {
            quality: Some(85),
            ..gray
        };
        assert_eq!(q85.fingerprint(), gray.fingerprint());
    }
}
