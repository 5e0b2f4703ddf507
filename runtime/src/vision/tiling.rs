//! SAIL-VL2's dynamic tiling (InternVL's `dynamic_preprocess`): grid choice and tile cutting,
//! exact to the reference.
//!
//! The reference builds its candidate grids with a Python *set* comprehension and then sorts them
//! by tile count with a stable sort. Grids with equal tile counts therefore keep CPython's set
//! iteration order, and because the grid picker breaks exact aspect-ratio ties by position in
//! that list, the order is observable: for some image sizes a different order gives a different
//! grid. The order is not a simple rule of `(i, j)`; it follows from CPython's tuple hash and its
//! open-addressing set table. [`candidate_grids`] therefore replays that construction (tuple hash,
//! probing, table growth) instead of hard-coding lists, so any `max_tiles` gets the same order as
//! the reference. The model is CPython >= 3.8 on a 64-bit build (the tuple hash changed in 3.8);
//! the tests pin the lists the spec gives for 10 and 12 tiles, and the Python parity script checks
//! every maximum from 1 to 64 against a real interpreter.
//!
//! The tiles themselves follow the reference's order of operations, which is observable: the
//! image is resized to the grid in the mode Pillow opened it in, and only each tile is converted
//! to RGB. For `RGBA`/`LA` that means a premultiplied-alpha resize; for palette (`P`) and
//! bilevel (`1`) images Pillow silently replaces the bicubic filter with nearest neighbour;
//! 16-bit grey (`I;16`) is resized in 16 bits and then *clipped* to 0..=255 (not scaled) by
//! `convert("RGB")`, so a typical 16-bit grey photo reaches the model almost white, exactly as in
//! the reference. Tile size, mean/std and tile limits are parameters ([`PreprocessConfig`]): they
//! come from the model file, so nothing here assumes 448 or ImageNet statistics.

use super::decode::{check_dimensions, to_rgb, DecodedImage, ImageLimits, PilMode, Pixels, PreprocessError};
use super::resize::{resize_bicubic_premultiplied, resize_bicubic_rgb8, resize_bicubic_u16, resize_bicubic_u8, resize_nearest};

/// Largest `max_tiles` the simulation accepts. The set replay is cheap well beyond this, but
/// VLMEvalKit caps SAIL at 64 tiles per image and more tiles only cost memory.
pub const MAX_TILES_LIMIT: u32 = 64;
/// Largest tile side accepted in a [`PreprocessConfig`].
pub const MAX_TILE_SIZE: u32 = 4096;

/// Candidate grids `(cols, rows)` with `min_tiles <= cols * rows <= max_tiles`, in the reference's
/// order: ascending tile count, ties in CPython set iteration order.
///
/// Returns an empty list when `min_tiles > max_tiles` (the reference then keeps its `(1, 1)`
/// default; [`select_grid`] does the same).
pub fn candidate_grids(min_tiles: u32, max_tiles: u32) -> Vec<(u32, u32)> {
    let (min_n, max_n) = (u64::from(min_tiles), u64::from(max_tiles));
    let mut set = PySet::new();
    // Same loop nest and insertion order as the reference's comprehension:
    // {(i, j) for n in range(min, max + 1) for i in range(1, n + 1) for j in range(1, n + 1)
    //  if min <= i * j <= max}
    for n in min_n..=max_n {
        for i in 1..=n {
            for j in 1..=n {
                let p = i * j;
                if min_n <= p && p <= max_n {
                    set.add((i, j));
                }
            }
        }
    }
    let mut grids: Vec<(u32, u32)> = set.iter_order().map(|(i, j)| (i as u32, j as u32)).collect();
    // `sorted(..., key=lambda r: r[0] * r[1])` is stable, so is `sort_by_key`.
    grids.sort_by_key(|&(i, j)| u64::from(i) * u64::from(j));
    grids
}

/// Picks the grid `(cols, rows)` for an image of `width` x `height` pixels, as the reference's
/// `_closest_aspect_ratio` does: the candidate whose `cols / rows` is closest to `width / height`;
/// on an exact tie a later candidate wins only if `width * height > 0.5 * S^2 * cols * rows`.
///
/// The arithmetic is IEEE double as in Python, so ties are found exactly where Python finds them.
pub fn select_grid(width: u32, height: u32, tile_size: u32, min_tiles: u32, max_tiles: u32) -> (u32, u32) {
    let candidates = candidate_grids(min_tiles, max_tiles);
    select_grid_from(width, height, tile_size, &candidates)
}

/// [`select_grid`] over a precomputed candidate list (e.g. from [`candidate_grids`]).
pub fn select_grid_from(width: u32, height: u32, tile_size: u32, candidates: &[(u32, u32)]) -> (u32, u32) {
    let aspect = f64::from(width) / f64::from(height);
    // Python compares the int area with a float exactly; below 2^53 the f64 conversion is exact.
    let area = (u64::from(width) * u64::from(height)) as f64;
    let s = f64::from(tile_size);
    let mut best_diff = f64::INFINITY;
    let mut best = (1, 1);
    for &(i, j) in candidates {
        let diff = (aspect - f64::from(i) / f64::from(j)).abs();
        if diff < best_diff {
            best_diff = diff;
            best = (i, j);
        } else if diff == best_diff && area > 0.5 * s * s * f64::from(i) * f64::from(j) {
            best = (i, j);
        }
    }
    best
}

/// Number of tiles the reference produces for a grid: `cols * rows`, plus the thumbnail when
/// requested and the grid has more than one tile.
pub fn tile_count(grid: (u32, u32), use_thumbnail: bool) -> usize {
    let n = grid.0 as usize * grid.1 as usize;
    n + usize::from(use_thumbnail && n != 1)
}

// ----------------------------------------------------------------------------------------------
// Cutting the tiles

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
    /// the default [`ImageLimits`].
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

/// Tiles before normalisation: `[tiles, S, S, 3]` RGB bytes (HWC), the reference's uint8 arrays.
#[derive(Clone, Debug)]
pub struct TilesU8 {
    pub grid: (u32, u32),
    pub tiles: usize,
    pub tile_size: u32,
    pub thumbnail: bool,
    pub data: Vec<u8>,
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

/// The non-dynamic path up to uint8 (see [`super::preprocess_single`]).
pub fn single_tile_u8(img: &DecodedImage, cfg: &PreprocessConfig) -> Result<TilesU8, PreprocessError> {
    cfg.validate()?;
    check_dimensions(&img.source, img.width, img.height, cfg.limits.max_pixels)?;
    let s = cfg.tile_size;
    let rgb = img.to_rgb8();
    let data = resize_bicubic_rgb8(&rgb, img.width, img.height, s, s);
    Ok(TilesU8 { grid: (1, 1), tiles: 1, tile_size: s, thumbnail: false, data })
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

// ----------------------------------------------------------------------------------------------
// CPython set replay (Objects/setobject.c and tuplehash in Objects/tupleobject.c, 64-bit).

const XXPRIME_1: u64 = 11_400_714_785_074_694_791;
const XXPRIME_2: u64 = 14_029_467_366_897_019_727;
const XXPRIME_5: u64 = 2_870_177_450_012_600_261;
const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;
const SET_MINSIZE: usize = 8;

/// `hash((i, j))` for small non-negative ints (whose hash is the value itself).
pub(super) fn tuple_hash(items: &[u64]) -> u64 {
    let mut acc = XXPRIME_5;
    for &lane in items {
        acc = acc.wrapping_add(lane.wrapping_mul(XXPRIME_2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(XXPRIME_1);
    }
    acc = acc.wrapping_add((items.len() as u64) ^ (XXPRIME_5 ^ 3_527_539));
    if acc == u64::MAX {
        // -1 is reserved for errors in CPython.
        return 1_546_275_796;
    }
    acc
}

/// The slot table of a CPython set holding `(i, j)` tuples. No deletions happen, so there are no
/// dummy entries and only insertion, lookup and growth matter.
struct PySet {
    table: Vec<Option<((u64, u64), u64)>>,
    fill: usize,
    used: usize,
}

impl PySet {
    fn new() -> Self {
        PySet { table: vec![None; SET_MINSIZE], fill: 0, used: 0 }
    }

    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    fn add(&mut self, key: (u64, u64)) {
        let hash = tuple_hash(&[key.0, key.1]);
        let mask = self.mask();
        let mut perturb = hash;
        let mut i = (hash as usize) & mask;
        loop {
            let mut probes = if i + LINEAR_PROBES <= mask { LINEAR_PROBES } else { 0 };
            let mut j = i;
            loop {
                match self.table[j] {
                    None => {
                        self.table[j] = Some((key, hash));
                        self.fill += 1;
                        self.used += 1;
                        if self.fill * 5 >= mask * 3 {
                            let minused = if self.used > 50_000 { self.used * 2 } else { self.used * 4 };
                            self.resize(minused);
                        }
                        return;
                    }
                    Some((k, h)) if h == hash && k == key => return,
                    Some(_) => {}
                }
                if probes == 0 {
                    break;
                }
                probes -= 1;
                j += 1;
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
        }
    }

    fn resize(&mut self, minused: usize) {
        let mut newsize = SET_MINSIZE;
        while newsize <= minused {
            newsize <<= 1;
        }
        let old = std::mem::replace(&mut self.table, vec![None; newsize]);
        let mask = newsize - 1;
        for (key, hash) in old.into_iter().flatten() {
            // set_insert_clean: no equality checks, first free slot of the probe sequence.
            let mut perturb = hash;
            let mut i = (hash as usize) & mask;
            'probe: loop {
                if self.table[i].is_none() {
                    self.table[i] = Some((key, hash));
                    break 'probe;
                }
                if i + LINEAR_PROBES <= mask {
                    for j in i + 1..=i + LINEAR_PROBES {
                        if self.table[j].is_none() {
                            self.table[j] = Some((key, hash));
                            break 'probe;
                        }
                    }
                }
                perturb >>= PERTURB_SHIFT;
                i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
            }
        }
    }

    fn iter_order(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.table.iter().flatten().map(|&(k, _)| k)
    }
}
