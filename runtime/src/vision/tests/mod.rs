//! The vision preprocessing tests, kept out of the source files: decoding and hostile files,
//! the tiling geometry and tile cutting, normalisation, and parity with Pillow on a generated
//! corpus. Shared fixtures live here.

mod decode;
mod normalize;
mod parity;
mod tiling;

use super::tiling::PreprocessConfig;
use image::{ExtendedColorType, ImageEncoder};

pub(super) const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub(super) const STD: [f32; 3] = [0.229, 0.224, 0.225];

pub(super) fn cfg(tile: u32, max: u32) -> PreprocessConfig {
    PreprocessConfig::new(tile, MEAN, STD, max)
}

pub(super) fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

pub(super) fn encode_png(w: u32, h: u32, color: ExtendedColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(data, w, h, color).unwrap();
    out
}

/// A PNG that is only a signature, an IHDR claiming `w` x `h`, and IEND: no pixel data at all,
/// so any error it gets must come from the header check.
pub(super) fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (tag, data) in [(&b"IHDR"[..], [&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat()), (&b"IEND"[..], vec![])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let body = [tag, &data[..]].concat();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    }
    out
}

pub(super) fn encode_jpeg(w: u32, h: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).write_image(data, w, h, ExtendedColorType::Rgb8).unwrap();
    out
}
