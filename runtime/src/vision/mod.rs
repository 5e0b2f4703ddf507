//! Image -> SAIL-VL2 pixel tiles -> vision embeddings, byte-exact to the reference processor
//! (Pillow 13 + SAIL's `load_image`) up to the encoder.
//!
//! The modules follow the data: [`decode`] (file -> pixels in Pillow's mode), [`tiling`] (grid
//! choice and tile cutting, resizing through [`resize`]), [`normalize`] (uint8 tiles -> f32),
//! [`encoder`] (the SAIL-ViT graph). Exactness wins over convenience at every step: the vision
//! tower must see exactly what the reference's Pillow pipeline produces, so each step copies
//! Pillow's behaviour as well as its maths, and each module says where and why.
//! [`preprocess`] chains the three preprocessing steps for callers that only want the tensor.

pub mod decode;
#[cfg(feature = "engine")]
pub mod encoder;
pub mod normalize;
pub mod resize;
pub mod tiling;

#[cfg(test)]
mod tests;

use decode::{DecodedImage, PreprocessError};
use tiling::{single_tile_u8, tiles_u8, PreprocessConfig};

/// Normalised tiles, `[tiles, 3, S, S]` f32 (RGB planes), in the reference's tile order:
/// row-major grid tiles, then the thumbnail.
#[derive(Clone, Debug)]
pub struct Preprocessed {
    /// Grid `(cols, rows)`.
    pub grid: (u32, u32),
    pub tiles: usize,
    pub tile_size: u32,
    /// Whether the last tile is the whole-image thumbnail.
    pub thumbnail: bool,
    pub pixels: Vec<f32>,
}

/// SAIL's dynamic preprocessing: tiles + normalisation. See [`tiles_u8`] and [`normalize::normalize`].
pub fn preprocess(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<Preprocessed, PreprocessError> {
    let t = tiles_u8(img, cfg)?;
    let pixels = normalize::normalize(&t, cfg.mean, cfg.std);
    Ok(Preprocessed { grid: t.grid, tiles: t.tiles, tile_size: t.tile_size, thumbnail: t.thumbnail, pixels })
}

/// The reference's non-dynamic path (`dynamic=False`): one tile, `convert("RGB")` first, then a
/// bicubic resize to S x S. Differs from `max_tiles = 1` for RGBA/LA/P/`1`/`I;16` images, where
/// the dynamic path resizes before converting.
pub fn preprocess_single(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<Preprocessed, PreprocessError> {
    let t = single_tile_u8(img, cfg)?;
    let pixels = normalize::normalize(&t, cfg.mean, cfg.std);
    Ok(Preprocessed { grid: t.grid, tiles: t.tiles, tile_size: t.tile_size, thumbnail: t.thumbnail, pixels })
}
