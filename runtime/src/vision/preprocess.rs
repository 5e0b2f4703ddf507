//! Image file -> SAIL-VL2 pixel tiles, byte-exact to the reference processor (Pillow 13 + SAIL's
//! `load_image`).
//!
//! Why it is built this way:
//!
//! * **Exactness over convenience.** The vision tower sees exactly what the reference's Pillow
//!   pipeline produces. So this module copies Pillow's behaviour as well as its maths. The image
//!   is resized in the pixel mode Pillow opened it in, and each tile is converted to RGB only
//!   afterwards, because SAIL's processor does it in that order. For `RGBA`/`LA` that means a
//!   premultiplied-alpha resize. For palette (`P`) and bilevel (`1`) images, Pillow silently
//!   replaces the bicubic filter with nearest neighbour. 16-bit grey (`I;16`) is resized in 16
//!   bits and then *clipped* to 0..=255 (not scaled) by `convert("RGB")`, so a typical 16-bit
//!   grey photo reaches the model almost white, exactly as in the reference. The `image` crate
//!   decodes the file. [`DecodedImage`] then records the Pillow mode (read from the file header where the
//!   decoded colour type does not say it) and converts the samples the way Pillow's unpackers
//!   do: 16-bit RGB(A) keeps the high byte, which is a truncation, not a rounding.
//! * **EXIF orientation is not applied**, on purpose: the reference calls `Image.open` and never
//!   `ImageOps.exif_transpose`, so it tiles the stored pixel grid. Rotating here would make a
//!   different tile grid than the reference for every rotated phone photo.
//! * **Hostile files fail early with a typed error.** Before any pixel is decoded, the dimensions
//!   are read from the header and checked: a pixel budget (default [`DEFAULT_MAX_PIXELS`]),
//!   zero sizes, and absurd aspect ratios ([`MAX_ASPECT_RATIO`]). Empty, truncated, corrupt and
//!   unsupported files become [`PreprocessError`] variants that name the file; nothing panics.
//!   The aspect limit is deliberately loose. Pillow 13 resizes a 1xN strip at a cost linear in N,
//!   and SAIL's tiling just picks the most elongated grid, so strips are refused only when they
//!   are both extreme (over 1000:1) and long (over 4096 px). Only there would the filter tables
//!   grow with the long side while the content is squashed into slivers. A 1024x1 colour map or a
//!   1000x10 banner goes through as in the reference.
//! * **Tile size, mean/std and tile limits are parameters** ([`PreprocessConfig`]); they come from
//!   the model file, so nothing here assumes 448 or ImageNet statistics.
//!
//! Known limits of the "exact" claim (details on [`load_image`]): JPEGs are decoded by
//! zune-jpeg, not Pillow's libjpeg-turbo, so their pixels differ by a few levels before any
//! preprocessing (chroma upsampling and IDCT rounding); lossy WebP is decoded by image-webp
//! (identical to libwebp on the test corpus, not guaranteed). CMYK JPEGs arrive already
//! converted to RGB. GIFs whose first frame overflows the logical screen keep the screen size.
//! Lossless formats match Pillow exactly.

use std::fmt;
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

pub use super::resize::{
    premultiply_alpha, resize_bicubic_premultiplied, resize_bicubic_rgb8, resize_bicubic_u16, resize_bicubic_u8, resize_nearest,
    unpremultiply_alpha, PassOrder,
};
pub use super::tiling::{candidate_grids, select_grid, tile_count, MAX_TILES_LIMIT};

/// Default pixel budget: 64 Mi pixels (e.g. 8192 x 8192), checked from the header before decoding.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

/// What an image may cost. One value flows from the caller's flag or parameter to the decoder
/// (checked from the header, before any pixel is decoded) and to the tiler, so both enforce the
/// same budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most pixels (width × height) an image may have.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: DEFAULT_MAX_PIXELS }
    }
}
/// Long side : short side beyond which a *long* image is refused (see [`MAX_ASPECT_FREE_SIDE`]).
pub const MAX_ASPECT_RATIO: u64 = 1000;
/// Images whose long side is at most this are never refused for their shape: they are cheap, and
/// the reference handles them.
pub const MAX_ASPECT_FREE_SIDE: u64 = 4096;
/// Largest tile side accepted in a [`PreprocessConfig`].
pub const MAX_TILE_SIZE: u32 = 4096;

const MEMORY_NAME: &str = "<memory>";

/// Everything that can go wrong between a file and its tiles. Every variant about an image names
/// its source (`file`: the path, or `<memory>`).
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    // The I/O error is part of the message and deliberately not a `source`: printed with its
    // chain, it would appear twice.
    #[error("{file}: cannot read image: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: the file is empty")]
    Empty { file: String },
    #[error("{file}: unsupported image format ({detail}); supported: JPEG, PNG, WebP, BMP, GIF")]
    UnsupportedFormat { file: String, detail: String },
    #[error("{file}: the image has a zero dimension ({width}x{height})")]
    ZeroSized { file: String, width: u32, height: u32 },
    #[error("{file}: {width}x{height} is {pixels} pixels, over the budget of {max_pixels}")]
    TooManyPixels { file: String, width: u32, height: u32, pixels: u64, max_pixels: u64 },
    #[error("{file}: {width}x{height} has an absurd aspect ratio (over {max_ratio}:1 with a side over {free_side} px)")]
    AbsurdAspectRatio { file: String, width: u32, height: u32, max_ratio: u64, free_side: u64 },
    #[error("{file}: the file is {bytes} bytes, too large for a pixel budget of {max_pixels}")]
    FileTooLarge { file: String, bytes: u64, max_pixels: u64 },
    #[error("{file}: truncated {format} data ({detail})")]
    Truncated { file: String, format: &'static str, detail: String },
    #[error("{file}: corrupt or malformed {format} data: {detail}")]
    Malformed { file: String, format: &'static str, detail: String },
    #[error("{file}: {detail}")]
    ResourceLimit { file: String, detail: String },
    #[error("{file}: pixel buffer of {len} bytes does not match {width}x{height} {mode}")]
    BadBuffer { file: String, len: usize, width: u32, height: u32, mode: PilMode },
    #[error("invalid preprocessing configuration: {0}")]
    InvalidConfig(String),
}

/// The pixel mode Pillow gives an opened image. It decides how the reference resizes it
/// (bicubic, premultiplied bicubic, nearest, 16-bit bicubic) and how it becomes RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PilMode {
    /// "L": 8-bit grey.
    L,
    /// "LA": grey + alpha (premultiplied resize).
    La,
    /// "RGB".
    Rgb,
    /// "RGBA" (premultiplied resize).
    Rgba,
    /// "P": palette. Stored here already expanded to RGB; resized with nearest neighbour, which
    /// commutes with the palette lookup.
    P,
    /// "1": bilevel, stored as 0/255; resized with nearest neighbour.
    Bilevel,
    /// "I;16": 16-bit grey; resized in 16 bits, clipped to 0..=255 when converted to RGB.
    I16,
}

impl PilMode {
    /// Pillow's name for the mode.
    pub fn pil_name(self) -> &'static str {
        match self {
            PilMode::L => "L",
            PilMode::La => "LA",
            PilMode::Rgb => "RGB",
            PilMode::Rgba => "RGBA",
            PilMode::P => "P",
            PilMode::Bilevel => "1",
            PilMode::I16 => "I;16",
        }
    }

    /// Samples per pixel in [`DecodedImage`]'s storage.
    pub fn channels(self) -> usize {
        match self {
            PilMode::L | PilMode::Bilevel | PilMode::I16 => 1,
            PilMode::La => 2,
            PilMode::Rgb | PilMode::P => 3,
            PilMode::Rgba => 4,
        }
    }
}

impl fmt::Display for PilMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pil_name())
    }
}

#[derive(Clone)]
enum Pixels {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// A decoded image in its Pillow mode, ready for [`preprocess`].
#[derive(Clone)]
pub struct DecodedImage {
    width: u32,
    height: u32,
    mode: PilMode,
    pixels: Pixels,
    format: Option<ImageFormat>,
    source: String,
}

impl fmt::Debug for DecodedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("mode", &self.mode)
            .field("format", &self.format)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The mode Pillow would have opened the file in.
    pub fn mode(&self) -> PilMode {
        self.mode
    }
    /// The container format, when the image came from a file.
    pub fn format(&self) -> Option<ImageFormat> {
        self.format
    }
    /// The file name errors use (the path, or `<memory>`).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Interleaved 8-bit samples ([`PilMode::channels`] per pixel); `None` for `I;16`.
    pub fn samples_u8(&self) -> Option<&[u8]> {
        match &self.pixels {
            Pixels::U8(v) => Some(v),
            Pixels::U16(_) => None,
        }
    }
    /// 16-bit samples of an `I;16` image.
    pub fn samples_u16(&self) -> Option<&[u16]> {
        match &self.pixels {
            Pixels::U16(v) => Some(v),
            Pixels::U8(_) => None,
        }
    }

    /// Pillow's `convert("RGB")` of this image: interleaved RGB, `width * height * 3` bytes.
    pub fn to_rgb8(&self) -> Vec<u8> {
        to_rgb(self.mode, &self.pixels)
    }
}

/// Builds an RGB image from a raw interleaved buffer (camera frames, already-decoded pictures).
pub fn from_rgb8(width: u32, height: u32, data: &[u8]) -> Result<DecodedImage, PreprocessError> {
    from_pixels_u8(PilMode::Rgb, width, height, data.to_vec())
}

/// Builds an image of an 8-bit mode from interleaved samples ([`PilMode::channels`] per pixel;
/// `P` takes palette-expanded RGB, `1` takes 0/255). Not for `I;16` (see [`from_gray16`]).
pub fn from_pixels_u8(mode: PilMode, width: u32, height: u32, data: Vec<u8>) -> Result<DecodedImage, PreprocessError> {
    let name = MEMORY_NAME;
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { file: name.into(), width, height });
    }
    let want = (width as usize).checked_mul(height as usize).and_then(|p| p.checked_mul(mode.channels()));
    if mode == PilMode::I16 || want != Some(data.len()) {
        return Err(PreprocessError::BadBuffer { file: name.into(), len: data.len(), width, height, mode });
    }
    Ok(DecodedImage { width, height, mode, pixels: Pixels::U8(data), format: None, source: MEMORY_NAME.into() })
}

/// Builds an `I;16` image from 16-bit grey samples.
pub fn from_gray16(width: u32, height: u32, data: Vec<u16>) -> Result<DecodedImage, PreprocessError> {
    let name = MEMORY_NAME;
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { file: name.into(), width, height });
    }
    if Some(data.len()) != (width as usize).checked_mul(height as usize) {
        return Err(PreprocessError::BadBuffer { file: name.into(), len: data.len() * 2, width, height, mode: PilMode::I16 });
    }
    Ok(DecodedImage { width, height, mode: PilMode::I16, pixels: Pixels::U16(data), format: None, source: MEMORY_NAME.into() })
}

/// Checks dimensions against the hostile-input limits: zero sizes, the pixel budget, and absurd
/// aspect ratios (long side over [`MAX_ASPECT_RATIO`] times the short side *and* over
/// [`MAX_ASPECT_FREE_SIDE`]). `file` names the source in the error.
pub fn check_dimensions(file: &str, width: u32, height: u32, max_pixels: u64) -> Result<(), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { file: file.into(), width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(PreprocessError::TooManyPixels { file: file.into(), width, height, pixels, max_pixels });
    }
    let long = u64::from(width.max(height));
    let short = u64::from(width.min(height));
    if long > MAX_ASPECT_FREE_SIDE && long > MAX_ASPECT_RATIO * short {
        return Err(PreprocessError::AbsurdAspectRatio {
            file: file.into(),
            width,
            height,
            max_ratio: MAX_ASPECT_RATIO,
            free_side: MAX_ASPECT_FREE_SIDE,
        });
    }
    Ok(())
}

/// Reads and decodes an image file (JPEG, PNG, WebP, BMP, GIF first frame) into its Pillow mode.
///
/// The header is checked before decoding (see [`check_dimensions`]); `max_pixels` is the pixel
/// budget ([`DEFAULT_MAX_PIXELS`] is a sensible value).
///
/// Modes, as Pillow opens them: PNG grey 1-bit -> `1`, grey 2/4/8-bit -> `L`, grey 16-bit ->
/// `I;16`, RGB 8/16-bit -> `RGB`, palette -> `P`, grey+alpha 8-bit -> `LA`, grey+alpha 16-bit and
/// RGBA -> `RGBA` (16-bit samples keep their high byte; `tRNS` transparency is ignored as Pillow's
/// `convert("RGB")` ignores it). BMP <= 8 bpp -> `P`, or `L`/`1` when the palette is the identity
/// grey ramp; 32-bit BMP -> `RGB` unless its bit fields carry alpha. GIF -> `P`, or `L` when the
/// palette is the identity grey ramp; pixels outside the first frame take the palette colour of
/// the transparency index (or index 0), as in Pillow. JPEG -> `L` or `RGB`; WebP -> `RGB` or
/// `RGBA`.
///
/// Not reproduced exactly: lossy JPEG/WebP pixels come from other decoders than Pillow's
/// (differences of a few levels are normal); CMYK/YCCK JPEGs are converted to RGB by the decoder
/// (Pillow resizes them in CMYK; an approximation); 16-bit-per-pixel BMPs may round their 5/6-bit
/// channels differently; a GIF whose first frame extends past its logical screen keeps the screen
/// size (Pillow grows the canvas); a PNG with a corrupt IDAT CRC is refused (Pillow does not check
/// it). EXIF orientation is never applied (the reference does not apply it either).
///
/// Truncation follows Pillow: a file cut inside pixel data is [`PreprocessError::Truncated`], but
/// a PNG cut only in its IDAT CRC / IEND trailer is accepted, as Pillow accepts it; a JPEG must
/// reach its end-of-image marker.
pub fn load_image(path: &Path, limits: ImageLimits) -> Result<DecodedImage, PreprocessError> {
    let max_pixels = limits.max_pixels;
    let file = path.display().to_string();
    let io_err = |error| PreprocessError::Io { file: file.clone(), error };
    // a regular file, opened without blocking (a FIFO is refused, not waited on)
    let f = sail_format::files::open_input(path).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let cap = max_file_bytes(max_pixels);
    if len > cap {
        return Err(PreprocessError::FileTooLarge { file, bytes: len, max_pixels });
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| PreprocessError::ResourceLimit { file: file.clone(), detail: format!("cannot hold {len} bytes") })?;
    std::io::Read::read_to_end(&mut std::io::Read::take(f, cap), &mut bytes).map_err(io_err)?;
    decode_bytes(&bytes, &file, max_pixels)
}

/// [`load_image`] for an in-memory file; errors name it `<memory>`.
pub fn load_image_from_memory(bytes: &[u8], limits: ImageLimits) -> Result<DecodedImage, PreprocessError> {
    load_image_from_memory_named(bytes, MEMORY_NAME, limits)
}

/// [`load_image`] for an in-memory file, with the name errors should use.
pub fn load_image_from_memory_named(bytes: &[u8], name: &str, limits: ImageLimits) -> Result<DecodedImage, PreprocessError> {
    let max_pixels = limits.max_pixels;
    if bytes.len() as u64 > max_file_bytes(max_pixels) {
        return Err(PreprocessError::FileTooLarge { file: name.into(), bytes: bytes.len() as u64, max_pixels });
    }
    decode_bytes(bytes, name, max_pixels)
}

/// No supported format needs more than 16 bytes per pixel (16-bit RGBA PNG with stored deflate
/// blocks is ~8); the slack covers metadata such as ICC profiles and EXIF thumbnails.
fn max_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(16).saturating_add(64 << 20)
}

// ----------------------------------------------------------------------------------------------
// Preprocessing

/// Preprocessing parameters. Take `tile_size`, `mean`, `std` and `max_tiles` from the model file
/// (or `--max-tiles`); SAIL's processor uses `min_tiles = 1` and `use_thumbnail = true`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    pub tile_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub max_tiles: u32,
    pub min_tiles: u32,
    pub use_thumbnail: bool,
    pub limits: ImageLimits,
}

impl PreprocessConfig {
    /// SAIL's processor defaults around the model's values: `min_tiles` 1, thumbnail on,
    /// [`DEFAULT_MAX_PIXELS`].
    pub fn new(tile_size: u32, mean: [f32; 3], std: [f32; 3], max_tiles: u32) -> Self {
        PreprocessConfig { tile_size, mean, std, max_tiles, min_tiles: 1, use_thumbnail: true, limits: ImageLimits::default() }
    }

    fn validate(&self) -> Result<(), PreprocessError> {
        let bad = |m: String| Err(PreprocessError::InvalidConfig(m));
        if self.tile_size == 0 || self.tile_size > MAX_TILE_SIZE {
            return bad(format!("tile size {} is outside 1..={MAX_TILE_SIZE}", self.tile_size));
        }
        if self.min_tiles == 0 || self.min_tiles > self.max_tiles || self.max_tiles > MAX_TILES_LIMIT {
            return bad(format!("tile limits {}..={} must satisfy 1 <= min <= max <= {MAX_TILES_LIMIT}", self.min_tiles, self.max_tiles));
        }
        if self.std.iter().any(|&s| s == 0.0 || !s.is_finite()) || self.mean.iter().any(|m| !m.is_finite()) {
            return bad(format!("mean {:?} / std {:?} must be finite with std != 0", self.mean, self.std));
        }
        Ok(())
    }
}

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

/// Tiles before normalisation: `[tiles, S, S, 3]` RGB bytes (HWC), the reference's uint8 arrays.
#[derive(Clone, Debug)]
pub struct TilesU8 {
    pub grid: (u32, u32),
    pub tiles: usize,
    pub tile_size: u32,
    pub thumbnail: bool,
    pub data: Vec<u8>,
}

/// SAIL's dynamic preprocessing: tiles + normalisation. See [`tiles_u8`] and [`normalize`].
pub fn preprocess(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<Preprocessed, PreprocessError> {
    let t = tiles_u8(img, cfg)?;
    let pixels = normalize(&t, cfg.mean, cfg.std);
    Ok(Preprocessed { grid: t.grid, tiles: t.tiles, tile_size: t.tile_size, thumbnail: t.thumbnail, pixels })
}

/// The reference's non-dynamic path (`dynamic=False`): one tile, `convert("RGB")` first, then a
/// bicubic resize to S x S. Differs from `max_tiles = 1` for RGBA/LA/P/`1`/`I;16` images, where
/// the dynamic path resizes before converting.
pub fn preprocess_single(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<Preprocessed, PreprocessError> {
    let t = single_tile_u8(img, cfg)?;
    let pixels = normalize(&t, cfg.mean, cfg.std);
    Ok(Preprocessed { grid: t.grid, tiles: t.tiles, tile_size: t.tile_size, thumbnail: t.thumbnail, pixels })
}

/// SAIL's dynamic tiling up to uint8: pick the grid ([`select_grid`]), resize the image in its
/// own mode to `(S*cols, S*rows)`, convert to RGB, cut row-major tiles, then append the whole
/// image resized to S x S when there is more than one tile and `use_thumbnail` is set.
pub fn tiles_u8(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<TilesU8, PreprocessError> {
    cfg.validate()?;
    check_dimensions(&img.source, img.width, img.height, cfg.limits.max_pixels)?;
    let s = cfg.tile_size;
    let grid = select_grid(img.width, img.height, s, cfg.min_tiles, cfg.max_tiles);
    let (cols, rows) = grid;
    let (tw, th) = (s * cols, s * rows);
    let n_grid = cols as usize * rows as usize;
    let thumbnail = cfg.use_thumbnail && n_grid != 1;
    let tiles = n_grid + usize::from(thumbnail);
    let su = s as usize;
    let tile_bytes = su * su * 3;
    let mut data = Vec::with_capacity(tiles * tile_bytes);

    let full = to_rgb(img.mode, &resize_in_mode(img, tw, th));
    let row_bytes = tw as usize * 3;
    for k in 0..n_grid {
        let (x0, y0) = ((k % cols as usize) * su, (k / cols as usize) * su);
        for y in y0..y0 + su {
            let start = y * row_bytes + x0 * 3;
            data.extend_from_slice(&full[start..start + su * 3]);
        }
    }
    drop(full);
    if thumbnail {
        data.extend_from_slice(&to_rgb(img.mode, &resize_in_mode(img, s, s)));
    }
    debug_assert_eq!(data.len(), tiles * tile_bytes);
    Ok(TilesU8 { grid, tiles, tile_size: s, thumbnail, data })
}

/// The non-dynamic path up to uint8 (see [`preprocess_single`]).
pub fn single_tile_u8(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<TilesU8, PreprocessError> {
    cfg.validate()?;
    check_dimensions(&img.source, img.width, img.height, cfg.limits.max_pixels)?;
    let s = cfg.tile_size;
    let rgb = img.to_rgb8();
    let data = resize_bicubic_rgb8(&rgb, img.width, img.height, s, s);
    Ok(TilesU8 { grid: (1, 1), tiles: 1, tile_size: s, thumbnail: false, data })
}

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

/// Pillow's `Image.resize(size, BICUBIC)` for the image's mode (equal sizes copy).
fn resize_in_mode(img: &DecodedImage, ow: u32, oh: u32) -> Pixels {
    let (w, h) = (img.width, img.height);
    match (&img.pixels, img.mode) {
        (Pixels::U16(v), _) => Pixels::U16(resize_bicubic_u16(v, w, h, ow, oh)),
        (Pixels::U8(v), PilMode::P | PilMode::Bilevel) => Pixels::U8(resize_nearest(v, w, h, img.mode.channels(), ow, oh)),
        (Pixels::U8(v), PilMode::La | PilMode::Rgba) => Pixels::U8(resize_bicubic_premultiplied(v, w, h, img.mode.channels(), ow, oh)),
        (Pixels::U8(v), mode) => Pixels::U8(resize_bicubic_u8(v, w, h, mode.channels(), ow, oh)),
    }
}

/// Pillow's `convert("RGB")` from each mode.
fn to_rgb(mode: PilMode, pixels: &Pixels) -> Vec<u8> {
    match pixels {
        Pixels::U16(v) => v.iter().flat_map(|&x| [x.min(255) as u8; 3]).collect(),
        Pixels::U8(v) => match mode {
            PilMode::Rgb | PilMode::P => v.clone(),
            PilMode::Rgba => v.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            PilMode::La => v.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
            PilMode::L | PilMode::Bilevel | PilMode::I16 => v.iter().flat_map(|&x| [x; 3]).collect(),
        },
    }
}

// ----------------------------------------------------------------------------------------------
// Decoding

/// What the file header says about Pillow's mode, where the decoded colour type does not.
#[derive(Clone, Debug)]
enum Probe {
    Png {
        bit_depth: u8,
        color_type: u8,
    },
    /// `mode` is `Some` for <= 8 bpp (palette decision); `None` means "from the decoded type".
    Bmp {
        mode: Option<PilMode>,
    },
    Gif(GifProbe),
    Other,
}

#[derive(Clone, Debug)]
struct GifProbe {
    /// The first frame's effective palette when Pillow keeps one (mode `P`); `None` -> mode `L`.
    palette: Option<Vec<u8>>,
    frame: (u32, u32, u32, u32),
    fill_index: u8,
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Gif => "GIF",
        _ => "image",
    }
}

fn decode_bytes(bytes: &[u8], file: &str, max_pixels: u64) -> Result<DecodedImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty { file: file.into() });
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Bmp | ImageFormat::Gif)) => f,
        Ok(other) => {
            return Err(PreprocessError::UnsupportedFormat { file: file.into(), detail: format!("{other:?}") });
        }
        Err(_) => {
            return Err(PreprocessError::UnsupportedFormat { file: file.into(), detail: "unrecognised file signature".into() });
        }
    };
    let fname = format_name(format);
    let truncated = |detail: &str| PreprocessError::Truncated { file: file.into(), format: fname, detail: detail.into() };
    let malformed = |detail: String| PreprocessError::Malformed { file: file.into(), format: fname, detail };

    // Our own header read: dimensions (checked before the decoder allocates anything) and the
    // facts that decide Pillow's mode.
    let (probe, header_dims) = match format {
        ImageFormat::Png => probe_png(bytes).map_err(|e| e.into_error(file, fname))?,
        ImageFormat::Bmp => probe_bmp(bytes).map_err(|e| e.into_error(file, fname))?,
        ImageFormat::Gif => probe_gif(bytes).map_err(|e| e.into_error(file, fname))?,
        ImageFormat::Jpeg => {
            check_jpeg_complete(bytes).map_err(|e| e.into_error(file, fname))?;
            (Probe::Other, None)
        }
        _ => (Probe::Other, None),
    };
    if let Some((w, h)) = header_dims {
        check_dimensions(file, w, h, max_pixels)?;
    }

    // Pillow accepts a PNG cut anywhere after its last image-data byte (it never reads the
    // IDAT CRC or IEND strictly); the decoder wants both, so hand it a completed tail.
    let repaired = if format == ImageFormat::Png { png_complete_tail(bytes) } else { None };
    let bytes = repaired.as_deref().unwrap_or(bytes);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| classify(e, file, fname))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(file, w, h, max_pixels)?;
    if let Some(dims) = header_dims {
        if dims != (w, h) {
            return Err(malformed(format!("header says {}x{}, decoder says {w}x{h}", dims.0, dims.1)));
        }
    }
    // The decoder allocates the whole image at once and a failed allocation aborts the
    // process; so the peak this image needs (decoded samples, plus the RGB copy the mode
    // conversion may make) is reserved first, fallibly, and released just before decoding.
    let peak = decoder.total_bytes().checked_add(u64::from(w) * u64::from(h) * 4);
    let mut reserve: Vec<u8> = Vec::new();
    if peak.and_then(|n| usize::try_from(n).ok()).is_none_or(|n| reserve.try_reserve_exact(n).is_err()) {
        return Err(PreprocessError::ResourceLimit {
            file: file.into(),
            detail: format!("{w}x{h} needs {} bytes of memory to decode, more than can be reserved", peak.unwrap_or(u64::MAX)),
        });
    }
    drop(reserve);
    let dynimg = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, file, fname))?;
    if (dynimg.width(), dynimg.height()) != (w, h) {
        return Err(truncated("decoder returned fewer pixels than the header announced"));
    }
    let (mode, pixels) = to_pil_mode(format, &probe, dynimg);
    Ok(DecodedImage { width: w, height: h, mode, pixels, format: Some(format), source: file.into() })
}

/// Maps a decoded image to the mode and samples Pillow would hold.
fn to_pil_mode(format: ImageFormat, probe: &Probe, img: DynamicImage) -> (PilMode, Pixels) {
    use DynamicImage as D;
    match (format, probe) {
        (_, Probe::Png { bit_depth, color_type }) => match (*color_type, *bit_depth) {
            (0, 1) => (PilMode::Bilevel, Pixels::U8(channel0_u8(img).into_iter().map(|v| if v != 0 { 255 } else { 0 }).collect())),
            (0, 16) => (PilMode::I16, Pixels::U16(channel0_u16(img))),
            (0, _) => (PilMode::L, Pixels::U8(channel0_u8(img))),
            (2, _) => (PilMode::Rgb, Pixels::U8(rgb_u8(img))),
            (3, _) => (PilMode::P, Pixels::U8(rgb_u8(img))),
            (4, 8) => (PilMode::La, Pixels::U8(la_u8(img))),
            (4 | 6, _) => (PilMode::Rgba, Pixels::U8(rgba_u8(img))),
            _ => generic_mode(img),
        },
        (_, Probe::Bmp { mode: Some(mode) }) => match mode {
            PilMode::L => (PilMode::L, Pixels::U8(channel0_u8(img))),
            PilMode::Bilevel => (PilMode::Bilevel, Pixels::U8(channel0_u8(img))),
            _ => (PilMode::P, Pixels::U8(rgb_u8(img))),
        },
        (_, Probe::Gif(g)) => {
            let (width, height) = (img.width(), img.height());
            let mut rgb = rgb_u8(img);
            fill_outside_gif_frame(&mut rgb, width, height, g);
            match &g.palette {
                Some(_) => (PilMode::P, Pixels::U8(rgb)),
                None => (PilMode::L, Pixels::U8(rgb.chunks_exact(3).map(|p| p[0]).collect())),
            }
        }
        _ => match img {
            D::ImageLuma8(b) => (PilMode::L, Pixels::U8(b.into_raw())),
            D::ImageRgb8(b) => (PilMode::Rgb, Pixels::U8(b.into_raw())),
            D::ImageRgba8(b) => (PilMode::Rgba, Pixels::U8(b.into_raw())),
            other => generic_mode(other),
        },
    }
}

fn generic_mode(img: DynamicImage) -> (PilMode, Pixels) {
    if img.color().has_alpha() {
        (PilMode::Rgba, Pixels::U8(rgba_u8(img)))
    } else {
        (PilMode::Rgb, Pixels::U8(rgb_u8(img)))
    }
}

/// First channel as 8 bits (grey images; 16-bit samples keep the high byte).
fn channel0_u8(img: DynamicImage) -> Vec<u8> {
    use DynamicImage as D;
    match img {
        D::ImageLuma8(b) => b.into_raw(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).map(|p| p[0]).collect(),
        D::ImageRgb8(b) => b.into_raw().chunks_exact(3).map(|p| p[0]).collect(),
        D::ImageRgba8(b) => b.into_raw().chunks_exact(4).map(|p| p[0]).collect(),
        D::ImageLuma16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        D::ImageLumaA16(b) => b.into_raw().chunks_exact(2).map(|p| (p[0] >> 8) as u8).collect(),
        other => other.to_luma8().into_raw(),
    }
}

fn channel0_u16(img: DynamicImage) -> Vec<u16> {
    use DynamicImage as D;
    match img {
        D::ImageLuma16(b) => b.into_raw(),
        D::ImageLumaA16(b) => b.into_raw().chunks_exact(2).map(|p| p[0]).collect(),
        other => other.to_luma16().into_raw(),
    }
}

/// RGB bytes, alpha dropped, 16-bit samples truncated to their high byte (Pillow's unpackers).
fn rgb_u8(img: DynamicImage) -> Vec<u8> {
    use DynamicImage as D;
    match img {
        D::ImageRgb8(b) => b.into_raw(),
        D::ImageRgba8(b) => b.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        D::ImageRgb16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        D::ImageRgba16(b) => b.into_raw().chunks_exact(4).flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8]).collect(),
        D::ImageLuma8(b) => b.into_raw().iter().flat_map(|&v| [v; 3]).collect(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
        other => other.to_rgb8().into_raw(),
    }
}

fn rgba_u8(img: DynamicImage) -> Vec<u8> {
    use DynamicImage as D;
    match img {
        D::ImageRgba8(b) => b.into_raw(),
        D::ImageRgba16(b) => b.into_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        D::ImageLumaA16(b) => b
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| {
                let (l, a) = ((p[0] >> 8) as u8, (p[1] >> 8) as u8);
                [l, l, l, a]
            })
            .collect(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        other => other.to_rgba8().into_raw(),
    }
}

fn la_u8(img: DynamicImage) -> Vec<u8> {
    match img {
        DynamicImage::ImageLumaA8(b) => b.into_raw(),
        other => other.to_luma_alpha8().into_raw(),
    }
}

/// Pillow starts a GIF's first frame on a canvas filled with the transparency index (or 0) and
/// converts through the palette; the decoder leaves transparent black there instead.
fn fill_outside_gif_frame(rgb: &mut [u8], width: u32, height: u32, g: &GifProbe) {
    let (left, top, fw, fh) = g.frame;
    if left == 0 && top == 0 && fw >= width && fh >= height {
        return;
    }
    let idx = g.fill_index as usize;
    let colour = match &g.palette {
        Some(p) => p.get(idx * 3..idx * 3 + 3).map_or([0, 0, 0], |c| [c[0], c[1], c[2]]),
        None => [g.fill_index; 3],
    };
    let (x1, y1) = (left.saturating_add(fw), top.saturating_add(fh));
    for y in 0..height {
        for x in 0..width {
            if x < left || x >= x1 || y < top || y >= y1 {
                let i = (y as usize * width as usize + x as usize) * 3;
                rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}

/// Header-level failures, turned into [`PreprocessError`] once the file name is known.
enum ProbeError {
    Truncated(&'static str),
    Malformed(String),
}

impl ProbeError {
    fn into_error(self, file: &str, format: &'static str) -> PreprocessError {
        match self {
            ProbeError::Truncated(d) => PreprocessError::Truncated { file: file.into(), format, detail: d.into() },
            ProbeError::Malformed(d) => PreprocessError::Malformed { file: file.into(), format, detail: d },
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

type ProbeResult = Result<(Probe, Option<(u32, u32)>), ProbeError>;

/// PNG: IHDR must be the first chunk; bit depth and colour type give Pillow's mode.
fn probe_png(b: &[u8]) -> ProbeResult {
    if b.len() < 8 + 8 + 13 {
        return Err(ProbeError::Truncated("file ends inside the IHDR header"));
    }
    if &b[12..16] != b"IHDR" || be32(b, 8) != 13 {
        return Err(ProbeError::Malformed("the first chunk is not a 13-byte IHDR".into()));
    }
    let (w, h) = (be32(b, 16), be32(b, 20));
    let (bit_depth, color_type) = (b[24], b[25]);
    Ok((Probe::Png { bit_depth, color_type }, Some((w, h))))
}

/// If a PNG ends after the data of an IDAT chunk (CRC, IEND or a trailing ancillary chunk cut
/// off), returns the file with that tail rebuilt: IDAT CRC recomputed and an IEND appended.
/// `None` when the file ends properly or is cut inside image data (a real truncation).
fn png_complete_tail(b: &[u8]) -> Option<Vec<u8>> {
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    let mut pos = 8usize;
    let mut seen_idat = false;
    loop {
        if pos == b.len() {
            // Clean end without IEND.
            return seen_idat.then(|| [b, &IEND[..]].concat());
        }
        if pos + 8 > b.len() {
            return seen_idat.then(|| [&b[..pos], &IEND[..]].concat());
        }
        let len = be32(b, pos) as usize;
        let kind = &b[pos + 4..pos + 8];
        let data_end = pos.checked_add(8)?.checked_add(len)?;
        if kind == b"IEND" {
            return None;
        }
        if data_end > b.len() {
            // Cut inside chunk data: fatal inside IDAT, a harmless tail elsewhere after IDAT.
            return (seen_idat && kind != b"IDAT").then(|| [&b[..pos], &IEND[..]].concat());
        }
        if data_end + 4 > b.len() {
            if kind != b"IDAT" {
                return seen_idat.then(|| [&b[..pos], &IEND[..]].concat());
            }
            let crc = crc32(&b[pos + 4..data_end]).to_be_bytes();
            return Some([&b[..data_end], &crc[..], &IEND[..]].concat());
        }
        seen_idat |= kind == b"IDAT";
        pos = data_end + 4;
    }
}

/// CRC-32 (IEEE, reflected), as PNG chunks use.
fn crc32(bytes: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, e) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *e = c;
    }
    !bytes.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// BMP: dimensions, and for palette images whether Pillow calls them `P`, `L` or `1`.
fn probe_bmp(b: &[u8]) -> ProbeResult {
    if b.len() < 18 {
        return Err(ProbeError::Truncated("file ends inside the BMP header"));
    }
    let header_size = le32(b, 14) as usize;
    let need = 14usize.saturating_add(header_size);
    if b.len() < need.max(26) {
        return Err(ProbeError::Truncated("file ends inside the DIB header"));
    }
    let (w, h, bits, colors, padding) = match header_size {
        12 => (u32::from(le16(b, 18)), u32::from(le16(b, 20)), le16(b, 24), 0u32, 3usize),
        40 | 52 | 56 | 64 | 108 | 124 => {
            let w = le32(b, 18) as i32;
            let h = le32(b, 22) as i32;
            (w.unsigned_abs(), h.unsigned_abs(), le16(b, 28), le32(b, 46), 4usize)
        }
        // Let the decoder report what it makes of other headers.
        _ => return Ok((Probe::Bmp { mode: None }, None)),
    };
    if bits > 8 {
        return Ok((Probe::Bmp { mode: None }, Some((w, h))));
    }
    let colors = if colors == 0 { 1u32 << bits } else { colors } as usize;
    let start = need;
    let mut grey = colors <= 256;
    for i in 0..colors.min(256) {
        let want = if colors == 2 { [0u8, 255][i] } else { i as u8 };
        let at = start + i * padding;
        // BMP palettes are stored B, G, R.
        match b.get(at..at + 3) {
            Some(c) if c == [want, want, want] => {}
            Some(_) => {
                grey = false;
                break;
            }
            None => return Err(ProbeError::Truncated("file ends inside the BMP palette")),
        }
    }
    let mode = if !grey {
        PilMode::P
    } else if colors <= 2 {
        PilMode::Bilevel
    } else {
        PilMode::L
    };
    Ok((Probe::Bmp { mode: Some(mode) }, Some((w, h))))
}

/// GIF: logical screen, the first frame's rectangle, palette and transparency index, following
/// Pillow's rule that an identity grey palette means mode `L`.
fn probe_gif(b: &[u8]) -> ProbeResult {
    let trunc = ProbeError::Truncated;
    if b.len() < 13 {
        return Err(trunc("file ends inside the GIF header"));
    }
    let (w, h) = (u32::from(le16(b, 6)), u32::from(le16(b, 8)));
    let palette_needed = |p: &[u8]| p.chunks_exact(3).enumerate().any(|(i, c)| !(i < 256 && c == [i as u8; 3]));
    let flags = b[10];
    let mut pos = 13usize;
    let mut global = None;
    if flags & 0x80 != 0 {
        let n = 3usize << ((flags & 7) + 1);
        let p = b.get(pos..pos + n).ok_or(trunc("file ends inside the global palette"))?;
        if palette_needed(p) {
            global = Some(p.to_vec());
        }
        pos += n;
    }
    let mut transparency = None;
    loop {
        match b.get(pos).copied() {
            None => return Err(trunc("file ends before the first image")),
            Some(0x21) => {
                let label = *b.get(pos + 1).ok_or(trunc("file ends inside an extension"))?;
                pos += 2;
                let mut first = true;
                loop {
                    let n = *b.get(pos).ok_or(trunc("file ends inside an extension"))? as usize;
                    pos += 1;
                    if n == 0 {
                        break;
                    }
                    let block = b.get(pos..pos + n).ok_or(trunc("file ends inside an extension"))?;
                    if first && label == 0xF9 && n >= 4 {
                        transparency = (block[0] & 1 != 0).then_some(block[3]);
                    }
                    first = false;
                    pos += n;
                }
            }
            Some(0x2C) => {
                let d = b.get(pos + 1..pos + 10).ok_or(trunc("file ends inside the image descriptor"))?;
                let frame = (u32::from(le16(d, 0)), u32::from(le16(d, 2)), u32::from(le16(d, 4)), u32::from(le16(d, 6)));
                let fflags = d[8];
                pos += 10;
                // None: no local table; Some(None): local identity grey table; Some(Some(p)).
                let mut local: Option<Option<Vec<u8>>> = None;
                if fflags & 0x80 != 0 {
                    let n = 3usize << ((fflags & 7) + 1);
                    let p = b.get(pos..pos + n).ok_or(trunc("file ends inside a local palette"))?;
                    local = Some(palette_needed(p).then(|| p.to_vec()));
                }
                let palette = match local {
                    Some(l) => l,
                    None => global,
                };
                let fill_index = transparency.unwrap_or(0);
                return Ok((Probe::Gif(GifProbe { palette, frame, fill_index }), Some((w, h))));
            }
            Some(0x3B) => return Err(ProbeError::Malformed("no image before the trailer".into())),
            Some(other) => return Err(ProbeError::Malformed(format!("unexpected block 0x{other:02x}"))),
        }
    }
}

/// Pillow refuses a JPEG whose entropy-coded data stops before the end-of-image marker
/// ("image file is truncated"); some decoders quietly return a grey-filled picture instead. This
/// walks the marker segments (so thumbnails inside APP segments are skipped) up to EOI.
fn check_jpeg_complete(b: &[u8]) -> Result<(), ProbeError> {
    let mut pos = 2usize; // after SOI
    loop {
        // Find the next marker, skipping fill bytes.
        // Like libjpeg, tolerate stray bytes between segments.
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        if pos >= b.len() {
            return Err(ProbeError::Truncated("no end-of-image marker"));
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else {
            return Err(ProbeError::Truncated("no end-of-image marker"));
        };
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            0xD0..=0xD7 | 0x01 | 0xD8 => continue,
            _ => {
                let len = match b.get(pos..pos + 2) {
                    Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                    None => return Err(ProbeError::Truncated("file ends inside a marker segment")),
                };
                if len < 2 {
                    return Err(ProbeError::Malformed(format!("marker 0x{marker:02x} has length {len}")));
                }
                pos += len;
                if pos > b.len() {
                    return Err(ProbeError::Truncated("file ends inside a marker segment"));
                }
                if marker == 0xDA {
                    // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or a restart
                    // marker, or else it starts the next marker.
                    loop {
                        match b.get(pos..pos + 2) {
                            None => return Err(ProbeError::Truncated("file ends inside the scan data")),
                            Some([0xFF, m]) if *m == 0x00 || (0xD0..=0xD7).contains(m) => pos += 2,
                            Some([0xFF, _]) => break,
                            Some(_) => pos += 1,
                        }
                    }
                }
            }
        }
    }
}

fn classify(e: image::ImageError, file: &str, format: &'static str) -> PreprocessError {
    use image::ImageError as E;
    let detail = e.to_string();
    let is_eof = {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut found = false;
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                found |= io.kind() == std::io::ErrorKind::UnexpectedEof;
            }
            let m = s.to_string().to_ascii_lowercase();
            found |= ["eof", "end of file", "truncat", "unexpected end", "not enough data", "no more data", "ended early"]
                .iter()
                .any(|k| m.contains(k));
            src = s.source();
        }
        found
    };
    match e {
        E::Unsupported(_) => PreprocessError::UnsupportedFormat { file: file.into(), detail },
        E::Limits(_) => PreprocessError::ResourceLimit { file: file.into(), detail },
        _ if is_eof => PreprocessError::Truncated { file: file.into(), format, detail },
        _ => PreprocessError::Malformed { file: file.into(), format, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ExtendedColorType, ImageEncoder};

    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];

    fn cfg(tile: u32, max: u32) -> PreprocessConfig {
        PreprocessConfig::new(tile, MEAN, STD, max)
    }

    fn noise(n: usize, seed: u32) -> Vec<u8> {
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

    fn encode_png(w: u32, h: u32, color: ExtendedColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(data, w, h, color).unwrap();
        out
    }

    /// A PNG that is only a signature, an IHDR claiming `w` x `h`, and IEND: no pixel data at all,
    /// so any error it gets must come from the header check.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (tag, data) in [(&b"IHDR"[..], [&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat()), (&b"IEND"[..], vec![])]
        {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let body = [tag, &data[..]].concat();
            out.extend_from_slice(&body);
            out.extend_from_slice(&crc32(&body).to_be_bytes());
        }
        out
    }

    fn encode_jpeg(w: u32, h: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).write_image(data, w, h, ExtendedColorType::Rgb8).unwrap();
        out
    }

    // -- hostile inputs: one test each --------------------------------------------------------

    #[test]
    fn hostile_empty_file() {
        let e = load_image_from_memory(&[], ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::Empty { .. }), "{e}");
        let dir = std::env::temp_dir().join(format!("sail-prep-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("empty.png");
        std::fs::write(&p, b"").unwrap();
        let e = load_image(&p, ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::Empty { .. }) && e.to_string().contains("empty.png"), "{e}");
        let missing = load_image(&dir.join("missing.png"), ImageLimits::default()).unwrap_err();
        assert!(matches!(missing, PreprocessError::Io { .. }) && missing.to_string().contains("missing.png"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn hostile_zero_sized() {
        let e = load_image_from_memory(&png_header_only(0, 5), ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::ZeroSized { width: 0, height: 5, .. }), "{e}");
        // GIF with a 0x0 logical screen.
        let gif = b"GIF89a\x00\x00\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
        let e = load_image_from_memory(gif, ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::ZeroSized { .. }), "{e}");
        assert!(matches!(from_rgb8(0, 10, &[]), Err(PreprocessError::ZeroSized { .. })));
    }

    #[test]
    fn hostile_truncated() {
        let (w, h) = (64, 48);
        let png = encode_png(w, h, ExtendedColorType::Rgb8, &noise((w * h * 3) as usize, 1));
        assert!(load_image_from_memory(&png, ImageLimits::default()).is_ok());
        let e = load_image_from_memory(&png[..png.len() / 2], ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::Truncated { format: "PNG", .. }), "{e}");
        let e = load_image_from_memory(&png[..20], ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::Truncated { .. }), "{e}");
        let jpg = encode_jpeg(w, h, &noise((w * h * 3) as usize, 2));
        assert!(load_image_from_memory(&jpg, ImageLimits::default()).is_ok());
        let e = load_image_from_memory(&jpg[..jpg.len() * 2 / 3], ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::Truncated { format: "JPEG", .. }), "{e}");
    }

    #[test]
    fn hostile_unsupported_format() {
        for bytes in [&b"II*\x00\x08\x00\x00\x00rest-of-a-tiff"[..], b"just some text, not an image", b"\x00\x01"] {
            let e = load_image_from_memory(bytes, ImageLimits::default()).unwrap_err();
            assert!(matches!(e, PreprocessError::UnsupportedFormat { .. }), "{e}");
        }
    }

    #[test]
    fn hostile_over_pixel_budget() {
        // The header alone claims 10^10 pixels; there is no pixel data to decode.
        let e = load_image_from_memory(&png_header_only(100_000, 100_000), ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::TooManyPixels { pixels: 10_000_000_000, .. }), "{e}");
        // The budget is configurable.
        let png = encode_png(40, 30, ExtendedColorType::L8, &noise(1200, 3));
        assert!(load_image_from_memory(&png, ImageLimits { max_pixels: 1200 }).is_ok());
        let e = load_image_from_memory(&png, ImageLimits { max_pixels: 1199 }).unwrap_err();
        assert!(matches!(e, PreprocessError::TooManyPixels { max_pixels: 1199, .. }), "{e}");
        let img = from_rgb8(40, 30, &noise(3600, 4)).unwrap();
        let mut c = cfg(448, 10);
        c.limits.max_pixels = 1000;
        assert!(matches!(preprocess(&img, &c), Err(PreprocessError::TooManyPixels { .. })));
    }

    #[test]
    fn hostile_absurd_aspect_ratio() {
        let e = load_image_from_memory(&png_header_only(100_000, 10), ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::AbsurdAspectRatio { width: 100_000, height: 10, .. }), "{e}");
        let e = load_image_from_memory(&png_header_only(3, 5000), ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::AbsurdAspectRatio { .. }), "{e}");
        // What the reference handles sensibly stays accepted.
        for (w, h) in [(1000, 10), (10, 1000), (1, 1000), (1000, 1), (1024, 1), (1, 4096), (4096, 4), (5000, 5), (200_000, 200)] {
            assert!(check_dimensions("x", w, h, DEFAULT_MAX_PIXELS).is_ok(), "{w}x{h}");
        }
        assert!(check_dimensions("x", 4097, 4, DEFAULT_MAX_PIXELS).is_err());
    }

    #[test]
    fn hostile_corrupt_data_is_a_typed_error() {
        let (w, h) = (32, 32);
        let mut png = encode_png(w, h, ExtendedColorType::Rgb8, &noise((w * h * 3) as usize, 5));
        let n = png.len();
        for b in &mut png[60..n - 20] {
            *b ^= 0x5A;
        }
        let e = load_image_from_memory(&png, ImageLimits::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::Malformed { .. } | PreprocessError::Truncated { .. }), "{e}");
    }

    #[test]
    fn hostile_every_truncation_point_is_an_error_not_a_panic() {
        let (w, h) = (23, 17);
        let rgb = noise((w * h * 3) as usize, 6);
        let mut files = vec![encode_png(w, h, ExtendedColorType::Rgb8, &rgb), encode_jpeg(w, h, &rgb)];
        let mut bmp = Vec::new();
        image::codecs::bmp::BmpEncoder::new(&mut bmp).write_image(&rgb, w, h, ExtendedColorType::Rgb8).unwrap();
        files.push(bmp);
        let mut gif = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
            let rgba: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
            enc.encode(&rgba, w, h, ExtendedColorType::Rgba8).unwrap();
        }
        files.push(gif);
        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp).write_image(&rgb, w, h, ExtendedColorType::Rgb8).unwrap();
        files.push(webp);
        for (name, f) in ["PNG", "JPEG", "BMP", "GIF", "WebP"].iter().zip(&files) {
            assert!(load_image_from_memory(f, ImageLimits::default()).is_ok());
            let ok: Vec<usize> = (0..f.len()).filter(|&cut| load_image_from_memory(&f[..cut], ImageLimits::default()).is_ok()).collect();
            // Only trailers may go missing: PNG's IDAT CRC + IEND (16 bytes; Pillow accepts those
            // cuts too), GIF's block terminator and trailer. Anything cut in pixel data fails.
            assert!(ok.iter().all(|&cut| cut + 16 >= f.len()), "{name}: prefixes {ok:?} of {} bytes decode", f.len());
            if *name == "PNG" {
                assert_eq!(ok, (f.len() - 16..f.len()).collect::<Vec<_>>(), "PNG tails Pillow accepts");
            }
        }
    }

    // -- decoding and modes ----------------------------------------------------------------------

    #[test]
    fn decodes_each_format_into_the_pillow_mode() {
        let (w, h) = (19, 11);
        let n = (w * h) as usize;
        let px = noise(n * 4, 7);
        let l16: Vec<u8> = px[..n * 2].to_vec();
        let cases: Vec<(Vec<u8>, PilMode)> = vec![
            (encode_png(w, h, ExtendedColorType::L8, &px[..n]), PilMode::L),
            (encode_png(w, h, ExtendedColorType::La8, &px[..n * 2]), PilMode::La),
            (encode_png(w, h, ExtendedColorType::Rgb8, &px[..n * 3]), PilMode::Rgb),
            (encode_png(w, h, ExtendedColorType::Rgba8, &px[..n * 4]), PilMode::Rgba),
            (encode_png(w, h, ExtendedColorType::L16, &l16), PilMode::I16),
            (encode_png(w, h, ExtendedColorType::La16, &px[..n * 4]), PilMode::Rgba),
            (encode_jpeg(w, h, &px[..n * 3]), PilMode::Rgb),
        ];
        for (bytes, mode) in cases {
            let img = load_image_from_memory(&bytes, ImageLimits::default()).unwrap();
            assert_eq!((img.width(), img.height(), img.mode()), (w, h, mode));
        }
        // 16-bit RGB keeps the high byte (Pillow's RGB;16B unpacker), it does not round.
        let rgb16: Vec<u8> = [0x12FFu16, 0x8080, 0xFE01].repeat(n).iter().flat_map(|v| v.to_ne_bytes()).collect();
        let img = load_image_from_memory(&encode_png(w, h, ExtendedColorType::Rgb16, &rgb16), ImageLimits::default()).unwrap();
        assert_eq!(img.mode(), PilMode::Rgb);
        assert_eq!(&img.samples_u8().unwrap()[..3], &[0x12, 0x80, 0xFE]);
        // I;16 -> RGB clips at 255 instead of scaling.
        let img = from_gray16(3, 1, vec![7, 255, 40_000]).unwrap();
        assert_eq!(img.to_rgb8(), vec![7, 7, 7, 255, 255, 255, 255, 255, 255]);
    }

    // -- geometry and the pipeline ---------------------------------------------------------------

    #[test]
    fn square_1000_gives_3x3_plus_thumbnail() {
        let img = from_rgb8(1000, 1000, &noise(3_000_000, 8)).unwrap();
        let p = preprocess(&img, &cfg(448, 10)).unwrap();
        assert_eq!((p.grid, p.tiles, p.thumbnail), ((3, 3), 10, true));
        assert_eq!(p.pixels.len(), 10 * 3 * 448 * 448);
    }

    #[test]
    fn thumbnail_only_when_more_than_one_tile() {
        let img = from_rgb8(300, 200, &noise(180_000, 9)).unwrap();
        let one = tiles_u8(&img, &cfg(448, 1)).unwrap();
        assert_eq!((one.grid, one.tiles, one.thumbnail), ((1, 1), 1, false));
        let many = tiles_u8(&img, &cfg(448, 10)).unwrap();
        assert_eq!((many.grid, many.tiles, many.thumbnail), ((3, 2), 7, true));
        let mut no_thumb = cfg(448, 10);
        no_thumb.use_thumbnail = false;
        assert_eq!(tiles_u8(&img, &no_thumb).unwrap().tiles, 6);
        // The thumbnail is the last tile and equals a direct S x S resize of the whole image.
        let thumb = resize_bicubic_rgb8(img.samples_u8().unwrap(), 300, 200, 448, 448);
        assert_eq!(&many.data[6 * 448 * 448 * 3..], &thumb[..]);
    }

    #[test]
    fn tiles_are_row_major_crops() {
        let img = from_rgb8(90, 40, &noise(90 * 40 * 3, 10)).unwrap();
        let t = tiles_u8(&img, &cfg(16, 10)).unwrap();
        let (cols, rows) = t.grid;
        let full = resize_bicubic_rgb8(img.samples_u8().unwrap(), 90, 40, 16 * cols, 16 * rows);
        for k in 0..(cols * rows) as usize {
            let (x0, y0) = ((k % cols as usize) * 16, (k / cols as usize) * 16);
            for y in 0..16 {
                let src = &full[((y0 + y) * 16 * cols as usize + x0) * 3..][..48];
                assert_eq!(&t.data[(k * 256 + y * 16) * 3..][..48], src);
            }
        }
    }

    #[test]
    fn config_is_validated() {
        let img = from_rgb8(8, 8, &[0; 192]).unwrap();
        for c in [cfg(0, 10), cfg(448, 0), cfg(448, MAX_TILES_LIMIT + 1), PreprocessConfig { min_tiles: 3, ..cfg(448, 2) }] {
            assert!(matches!(preprocess(&img, &c), Err(PreprocessError::InvalidConfig(_))), "{c:?}");
        }
        let mut c = cfg(448, 10);
        c.std = [0.0, 1.0, 1.0];
        assert!(matches!(preprocess(&img, &c), Err(PreprocessError::InvalidConfig(_))));
        assert!(matches!(from_rgb8(4, 4, &[0; 47]), Err(PreprocessError::BadBuffer { .. })));
    }

    #[test]
    fn normalize_is_torchvision_in_f32() {
        let t = TilesU8 { grid: (1, 1), tiles: 1, tile_size: 2, thumbnail: false, data: vec![0, 128, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9] };
        let out = normalize(&t, MEAN, STD);
        assert_eq!(out.len(), 12);
        // Planar: R plane first.
        assert_eq!(out[0], (0.0f32 / 255.0 - 0.485) / 0.229);
        assert_eq!(out[1], (1.0f32 / 255.0 - 0.485) / 0.229);
        assert_eq!(out[4], (128.0f32 / 255.0 - 0.456) / 0.224);
        assert_eq!(out[8], (255.0f32 / 255.0 - 0.406) / 0.225);
    }

    #[test]
    fn single_path_converts_before_resizing() {
        // An RGBA image with a transparent half: the dynamic path premultiplies, the single path
        // drops alpha first, so the two must differ while both stay well-formed.
        let (w, h) = (40, 30);
        let mut px = noise(w * h * 4, 11);
        for p in px.chunks_mut(4).step_by(2) {
            p[3] = 0;
        }
        let img = from_pixels_u8(PilMode::Rgba, w as u32, h as u32, px).unwrap();
        let a = tiles_u8(&img, &cfg(32, 1)).unwrap();
        let b = single_tile_u8(&img, &cfg(32, 1)).unwrap();
        assert_eq!((a.tiles, b.tiles), (1, 1));
        assert_ne!(a.data, b.data);
    }

    // -- parity with Pillow ---------------------------------------------------------------------

    mod parity {
        use super::*;
        use std::collections::BTreeMap;
        use std::path::PathBuf;
        use std::process::Command;

        const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/preprocess_ref.py");

        enum Npy {
            U8(Vec<u8>),
            F32(Vec<f32>),
        }

        fn read_npy(path: &Path) -> (Vec<usize>, Npy) {
            let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(&b[..6], b"\x93NUMPY", "{}", path.display());
            let (hlen, off) = if b[6] == 1 {
                (usize::from(u16::from_le_bytes([b[8], b[9]])), 10)
            } else {
                (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
            };
            let header = std::str::from_utf8(&b[off..off + hlen]).unwrap();
            let descr = header.split("'descr':").nth(1).unwrap().split('\'').nth(1).unwrap();
            assert!(header.contains("'fortran_order': False"));
            let shape_txt = header.split("'shape':").nth(1).unwrap();
            let shape_txt = &shape_txt[shape_txt.find('(').unwrap() + 1..shape_txt.find(')').unwrap()];
            let shape: Vec<usize> = shape_txt.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
            let data = &b[off + hlen..];
            let n: usize = shape.iter().product();
            let arr = match descr {
                "|u1" => Npy::U8(data[..n].to_vec()),
                "<f4" => Npy::F32(data[..n * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
                d => panic!("unsupported npy dtype {d}"),
            };
            (shape, arr)
        }

        fn u8s(n: Npy) -> Vec<u8> {
            match n {
                Npy::U8(v) => v,
                Npy::F32(_) => panic!("expected uint8"),
            }
        }

        #[derive(Default)]
        struct Stats {
            cases: usize,
            values: u64,
            exact: u64,
            max_diff: u8,
        }

        impl Stats {
            fn add(&mut self, a: &[u8], b: &[u8]) -> (f64, u8) {
                let (mut exact, mut max) = (0u64, 0u8);
                for (x, y) in a.iter().zip(b) {
                    let d = x.abs_diff(*y);
                    exact += u64::from(d == 0);
                    max = max.max(d);
                }
                self.cases += 1;
                self.values += a.len() as u64;
                self.exact += exact;
                self.max_diff = self.max_diff.max(max);
                (exact as f64 / a.len().max(1) as f64, max)
            }
        }

        fn python() -> String {
            std::env::var("SAIL_PYTHON").unwrap_or_else(|_| "python3".into())
        }

        #[test]
        fn parity_with_pillow_reference() {
            let have = Command::new(python()).args(["-c", "import numpy, PIL"]).output().map(|o| o.status.success()).unwrap_or(false);
            if !have {
                println!("SKIPPED parity_with_pillow_reference: {} with numpy and Pillow is not available", python());
                return;
            }
            let script = std::env::var("SAIL_PREPROCESS_REF_SCRIPT").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(SCRIPT));
            let (dir, generated) = match std::env::var("SAIL_PREPROCESS_PARITY_DIR") {
                Ok(d) => (PathBuf::from(d), false),
                Err(_) => (std::env::temp_dir().join(format!("sail-preprocess-parity-{}", std::process::id())), true),
            };
            if generated {
                let out = Command::new(python()).arg(&script).arg("--out").arg(&dir).output().expect("run preprocess_ref.py");
                assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
            }
            let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
            let mut failures = Vec::new();
            let mut stats: BTreeMap<String, Stats> = BTreeMap::new();
            let mut cand_checked = 0;
            for line in manifest.lines() {
                if let Some(info) = line.strip_prefix("# pillow") {
                    println!("reference: pillow{info}");
                }
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                let f: Vec<&str> = line.split('\t').collect();
                if f[0] == "cand" {
                    let max: u32 = f[1].parse().unwrap();
                    let want: Vec<(u32, u32)> = f[2]
                        .split(' ')
                        .map(|p| {
                            let (i, j) = p.split_once(',').unwrap();
                            (i.parse().unwrap(), j.parse().unwrap())
                        })
                        .collect();
                    if candidate_grids(1, max) != want {
                        failures.push(format!("candidate order for max {max} differs from CPython"));
                    }
                    cand_checked += 1;
                    continue;
                }
                let [case, file, class, path, s, max, gx, gy, ntiles, mode, w, h, compare, norm] = f[..] else {
                    panic!("bad manifest line {line}");
                };
                let (s, max): (u32, u32) = (s.parse().unwrap(), max.parse().unwrap());
                let want_grid: (u32, u32) = (gx.parse().unwrap(), gy.parse().unwrap());
                let want_tiles: usize = ntiles.parse().unwrap();
                let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
                let (rshape, rdata) = read_npy(&dir.join("ref").join(format!("{case}.npy")));
                let reference = u8s(rdata);
                assert_eq!(rshape, vec![want_tiles, s as usize, s as usize, 3]);
                let c = cfg(s, max);
                let run = |img: &DecodedImage| {
                    if path == "dynamic" {
                        tiles_u8(img, &c)
                    } else {
                        single_tile_u8(img, &c)
                    }
                };

                let img = match load_image(&dir.join(file), ImageLimits::default()) {
                    Ok(i) => i,
                    Err(e) => {
                        failures.push(format!("{case}: load failed: {e}"));
                        continue;
                    }
                };
                if (img.width(), img.height()) != (w, h) || img.mode().pil_name() != mode {
                    failures.push(format!("{case}: decoded {}x{} {} but Pillow has {w}x{h} {mode}", img.width(), img.height(), img.mode()));
                    continue;
                }
                let ours = run(&img).unwrap();
                if ours.grid != want_grid || ours.tiles != want_tiles {
                    failures.push(format!("{case}: grid {:?} x{} but reference {want_grid:?} x{want_tiles}", ours.grid, ours.tiles));
                    continue;
                }
                let label = if compare == "exact" { class.to_string() } else { format!("{class} (own decoder)") };
                let (frac, maxd) = stats.entry(label).or_default().add(&ours.data, &reference);
                if compare == "exact" && (frac < 0.999 || maxd > 1) {
                    failures.push(format!("{case}: {:.4}% exact, max diff {maxd}", frac * 100.0));
                }
                if frac < 1.0 {
                    println!("  {case}: {:.4}% exact, max diff {maxd}", frac * 100.0);
                }
                if compare == "decoded" {
                    // Where the decoders differ, check the pipeline on Pillow's own decoded pixels,
                    // and report how far the two decoders are apart.
                    let (dshape, ddata) = read_npy(&dir.join("ref").join(format!("{case}.decoded.npy")));
                    let decoded = u8s(ddata);
                    assert_eq!(dshape[..2], [h as usize, w as usize]);
                    let dmode = if dshape[2] == 1 { PilMode::L } else { PilMode::Rgb };
                    stats.entry(format!("{class} (decoder vs Pillow)")).or_default().add(img.samples_u8().unwrap(), &decoded);
                    let pil = from_pixels_u8(dmode, w, h, decoded).unwrap();
                    let t = run(&pil).unwrap();
                    let (frac, maxd) = stats.entry(format!("{class} (Pillow-decoded pixels)")).or_default().add(&t.data, &reference);
                    if frac < 0.999 || maxd > 1 {
                        failures.push(format!("{case} on Pillow's pixels: {:.4}% exact, max diff {maxd}", frac * 100.0));
                    }
                }
                if norm == "1" {
                    let (_, n) = read_npy(&dir.join("ref").join(format!("{case}.norm.npy")));
                    let Npy::F32(want) = n else { panic!("norm npy must be f32") };
                    let got = normalize(&ours, MEAN, STD);
                    let same = got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    if !same {
                        failures.push(format!("{case}: normalised f32 values are not bit-identical to to_pixel_values()"));
                    }
                    println!("  {case}: normalised values bit-identical: {same}");
                }
            }
            println!("\n{:<36} {:>5} {:>12} {:>10} {:>5}", "class", "cases", "values", "exact %", "max");
            for (class, s) in &stats {
                println!(
                    "{class:<36} {:>5} {:>12} {:>10.4} {:>5}",
                    s.cases,
                    s.values,
                    100.0 * s.exact as f64 / s.values.max(1) as f64,
                    s.max_diff
                );
            }
            println!("candidate orders checked against CPython: {cand_checked}");
            assert_eq!(cand_checked, 64);
            if failures.is_empty() && generated {
                std::fs::remove_dir_all(&dir).ok();
            }
            assert!(failures.is_empty(), "parity failures (files kept in {}):\n{}", dir.display(), failures.join("\n"));
        }
    }
}
