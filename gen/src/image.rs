//! Port of `reference/gen_image.py`: deterministic RGB test pictures as PNG files.
//!
//! Golden cases record an image only by its generator arguments and sha256, so the PNG must be
//! byte-identical to the Python one. That is possible because the picture is integer arithmetic
//! plus PCG64 raw words, and the PNG uses *stored* deflate blocks (no compressor whose output
//! could vary); the only checksums involved are CRC-32 and Adler-32 (`crc32fast`, `adler2`).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::rng::Pcg64;
use crate::{Error, Result};

/// The pixels of `gen_image.make_pixels(width, height, seed)`: `height * width * 3` bytes, RGB,
/// row-major.
pub fn make_pixels(width: usize, height: usize, seed: u64) -> Result<Vec<u8>> {
    if width < 1 || height < 1 {
        return Err(Error::InvalidArgs("empty image".into()));
    }
    let (w, h) = (width as i64, height as i64);
    let mut img = vec![[0i64; 3]; width * height];
    for y in 0..h {
        for x in 0..w {
            let r = (255 * x) / (w - 1).max(1);
            let g = (255 * y) / (h - 1).max(1);
            let tri = (x * 7 + y * 5) % 64;
            let b = 64 + 4 * tri.min(63 - tri);
            img[(y * w + x) as usize] = [r, g, b];
        }
    }
    let mut fill = |y0: i64, y1: i64, x0: i64, x1: i64, c: [i64; 3]| {
        for y in y0..y1.min(h) {
            for x in x0..x1.min(w) {
                img[(y * w + x) as usize] = c;
            }
        }
    };
    fill(h / 4, h / 2, w / 5, w / 2, [250, 20, 30]);
    fill(h / 2, 3 * h / 4, w / 2, 4 * w / 5, [10, 200, 240]);
    let (step_y, step_x) = ((h / 6).max(2), (w / 7).max(2));
    for y in (0..h).step_by(step_y as usize) {
        for x in 0..w {
            img[(y * w + x) as usize].iter_mut().for_each(|v| *v /= 2);
        }
    }
    for y in 0..h {
        for x in (0..w).step_by(step_x as usize) {
            img[(y * w + x) as usize].iter_mut().for_each(|v| *v /= 2);
        }
    }
    let mut rng = Pcg64::from_seed(u128::from(seed));
    let mut out = Vec::with_capacity(width * height * 3);
    for px in &img {
        for &v in px {
            let noise = (rng.next_u64() % 33) as i64 - 16;
            out.push((v + noise).clamp(0, 255) as u8);
        }
    }
    Ok(out)
}

fn chunk(out: &mut Vec<u8>, tag: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(tag);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// `gen_image.png_bytes`: 8-bit RGB PNG with stored deflate blocks.
pub fn png_bytes(pixels: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    if pixels.len() != width * height * 3 || width == 0 || height == 0 {
        return Err(Error::InvalidArgs(format!("{} bytes is not a {width}x{height} RGB image", pixels.len())));
    }
    if width > u32::MAX as usize || height > u32::MAX as usize {
        return Err(Error::InvalidArgs("image too large for PNG".into()));
    }
    let mut raw = Vec::with_capacity(height * (1 + width * 3));
    for row in pixels.chunks_exact(width * 3) {
        raw.push(0); // filter type 0
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65535).peekable();
    while let Some(block) = blocks.next() {
        z.push(u8::from(blocks.peek().is_none()));
        let n = block.len() as u16;
        z.extend_from_slice(&n.to_le_bytes());
        z.extend_from_slice(&(n ^ 0xffff).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler2::adler32_slice(&raw).to_be_bytes());
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", b"");
    Ok(png)
}

/// `gen_image.write_png`: writes the picture and returns the file's sha256 (lowercase hex).
pub fn write_png(path: impl AsRef<Path>, width: usize, height: usize, seed: u64) -> Result<String> {
    let path = path.as_ref();
    let data = png_bytes(&make_pixels(width, height, seed)?, width, height)?;
    std::fs::write(path, &data).map_err(|e| Error::write(path, e))?;
    Ok(crate::hex(&Sha256::digest(&data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        // The crates compute zlib's checksums: zlib.crc32(b"123456789"), zlib.adler32(b"Wikipedia")
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler2::adler32_slice(b"Wikipedia"), 0x11e6_0398);
        let big = vec![0xffu8; 100_000];
        // zlib.adler32(b"\xff" * 100000)
        assert_eq!(adler2::adler32_slice(&big), 0x149a_302c);
    }

    #[test]
    fn small_image_matches_python() {
        // hashlib.sha256(gen_image.png_bytes(gen_image.make_pixels(W, H, S))).hexdigest()
        for (w, h, s, want) in [
            (1, 1, 0, "da5daad1d674ed932f9f2d742a63c933d782a53255052111f46116ef82895009"),
            (2, 3, 5, "f2fa96111bccecd5345a999d8f1decea5adf2da0deb011f0cd74cb938c2e72e0"),
            // 771 rows of 1 + 28 * 3 bytes: exactly one full stored block; 1542 rows: exactly two
            (28, 771, 7, "5d0749e44bc599750aab2ba232b8e5b82b3996c02d6f955be68e0b7396770466"),
            (28, 1542, 3, "45c6e809776093f4c291d279e9c7a3de2be7e96163b7035bb9bb4181f0a75069"),
            (200, 150, 0, "9056c0e49a8ecc00c72bc1e86f90b674eb3eda4617f8a1052fd738ca7aa1740c"),
            (7, 1, u64::MAX, "3706ab113b293b2dcd27c6728b19f9eebb80fc8812c6d23cc919c1b1e29fdc4a"),
        ] {
            let png = png_bytes(&make_pixels(w, h, s).unwrap(), w, h).unwrap();
            assert_eq!(crate::hex(&Sha256::digest(&png)), want, "{w}x{h} seed {s}");
        }
    }
}
