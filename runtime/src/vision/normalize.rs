//! torchvision's `ToTensor` + `Normalize`, bit-exact in f32.
//!
//! The reference normalises uint8 tiles as `(x / 255 - mean) / std` in float32; doing the same
//! f32 operations (not a fused `x * scale + bias`, which rounds differently) keeps the vision
//! tower's input bit-identical. There are only 256 levels per channel, so the operations run once
//! per level into a table instead of once per pixel.

use super::tiling::TilesU8;

/// torchvision's `ToTensor` + `Normalize` in f32, as the reference computes it:
/// `(u8 as f32 / 255 - mean[c]) / std[c]`, output planar `[tiles, 3, S, S]`.
pub fn normalize(tiles: &TilesU8, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    // One table per channel: the same f32 operations as per pixel, done once per level.
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, e) in table.iter_mut().enumerate() {
            *e = (v as f32 / 255.0f32 - mean[c]) / std[c];
        }
    }
    let plane = tiles.tile_size as usize * tiles.tile_size as usize;
    let mut out = vec![0f32; tiles.tiles * 3 * plane];
    for (t, src) in tiles.data.chunks_exact(plane * 3).enumerate() {
        let dst = &mut out[t * 3 * plane..(t + 1) * 3 * plane];
        let (r, gb) = dst.split_at_mut(plane);
        let (g, b) = gb.split_at_mut(plane);
        for (i, px) in src.chunks_exact(3).enumerate() {
            r[i] = lut[0][px[0] as usize];
            g[i] = lut[1][px[1] as usize];
            b[i] = lut[2][px[2] as usize];
        }
    }
    out
}
