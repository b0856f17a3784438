//! Test images made on the fly with ImageMagick, and checks on what came back.

use std::sync::Once;

use magick_rust::{MagickWand, PixelWand, magick_wand_genesis};

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(magick_wand_genesis);
}

/// Colourful, photo-like RGB pixels: smooth gradients, waves and grain, all
/// depending on `seed`, so two seeds never give the same bytes.
pub fn rgb_pixels(width: usize, height: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (a, b, c) = (
        rng.f32() * 6.0 + 1.0,
        rng.f32() * 6.0 + 1.0,
        rng.f32() * 6.0,
    );
    let mut px = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let grain = rng.f32() * 24.0;
            let r = 255.0 * fx * (0.5 + 0.5 * (a * fy * std::f32::consts::TAU).sin());
            let g = 255.0 * fy * (0.5 + 0.5 * (b * fx * std::f32::consts::TAU + c).cos());
            let bl = 255.0 * (0.5 + 0.5 * ((fx + fy) * a * std::f32::consts::PI).sin());
            px.extend([r + grain, g + grain, bl + grain].map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    px
}

/// Encodes pixels laid out as `map` ("RGB", "RGBA", "CMYK"…) in `format`.
pub fn encode(width: usize, height: usize, pixels: &[u8], map: &str, format: &str) -> Vec<u8> {
    init();
    let mut wand = MagickWand::new();
    let mut background = PixelWand::new();
    background.set_color("black").unwrap();
    wand.new_image(width, height, &background).unwrap();
    if map.contains('A') {
        wand.set_image_alpha_channel(magick_rust::AlphaChannelOption::Set)
            .unwrap();
    }
    if map == "CMYK" {
        wand.set_image_colorspace(magick_rust::ColorspaceType::CMYK)
            .unwrap();
    }
    wand.import_image_pixels(0, 0, width, height, pixels, map)
        .unwrap();
    if format == "JPEG" {
        wand.set_image_compression_quality(80).unwrap();
    }
    wand.write_image_blob(format).unwrap()
}

/// A colour JPEG at quality 80.
pub fn jpeg(width: usize, height: usize, seed: u64) -> Vec<u8> {
    encode(
        width,
        height,
        &rgb_pixels(width, height, seed),
        "RGB",
        "JPEG",
    )
}

/// A colour PNG whose alpha falls from opaque (left) to transparent (right).
pub fn png_with_alpha(width: usize, height: usize, seed: u64) -> Vec<u8> {
    let rgb = rgb_pixels(width, height, seed);
    let mut rgba = Vec::with_capacity(width * height * 4);
    for (i, p) in rgb.chunks(3).enumerate() {
        let x = i % width;
        rgba.extend_from_slice(p);
        rgba.push((255 - x * 255 / width.max(1)) as u8);
    }
    encode(width, height, &rgba, "RGBA", "PNG")
}

/// What an image turned out to be.
#[derive(Debug)]
pub struct Inspected {
    pub format: String,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    /// Every pixel of every frame has R = G = B.
    pub gray_pixels: bool,
    pub has_alpha: bool,
    pub depth: usize,
}

/// Decodes `bytes` and looks at every pixel.
pub fn inspect(bytes: &[u8]) -> Inspected {
    init();
    let wand = MagickWand::new();
    wand.read_image_blob(bytes).expect("decodes");
    let frames = wand.get_number_images();
    let mut gray = true;
    let mut alpha = false;
    wand.reset_iterator();
    while wand.next_image() {
        let (w, h) = (wand.get_image_width(), wand.get_image_height());
        let px = wand.export_image_pixels(0, 0, w, h, "RGB").unwrap();
        gray &= px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]);
        alpha |= wand.get_image_alpha_channel();
    }
    wand.set_first_iterator();
    Inspected {
        format: wand.get_image_format().unwrap(),
        width: wand.get_image_width(),
        height: wand.get_image_height(),
        frames,
        gray_pixels: gray,
        has_alpha: alpha,
        depth: wand.get_image_depth(),
    }
}

/// The alpha values of the first frame, left to right along the middle row.
pub fn alpha_row(bytes: &[u8]) -> Vec<u8> {
    init();
    let wand = MagickWand::new();
    wand.read_image_blob(bytes).unwrap();
    let (w, h) = (wand.get_image_width(), wand.get_image_height());
    wand.export_image_pixels(0, (h / 2) as isize, w, 1, "A")
        .unwrap()
}

/// A large photo-like JPEG (quality 85): a small colourful image scaled up,
/// so a 98-megapixel one is a few megabytes, as a real photo of that size is.
pub fn large_jpeg(width: usize, height: usize, seed: u64) -> Vec<u8> {
    let (w, h) = (320, (320 * height / width).max(1));
    let small = encode(w, h, &rgb_pixels(w, h, seed), "RGB", "PNG");
    let mut wand = MagickWand::new();
    wand.read_image_blob(&small).unwrap();
    wand.resize_image(width, height, magick_rust::FilterType::Triangle)
        .unwrap();
    wand.set_image_compression_quality(85).unwrap();
    wand.write_image_blob("JPEG").unwrap()
}
