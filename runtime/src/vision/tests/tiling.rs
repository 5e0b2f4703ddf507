//! Tiling: the reference's candidate grid order and grid choice, then the tile cutting.

use super::{cfg, noise};
use crate::vision::decode::{from_pixels_u8, from_rgb8, PilMode, PreprocessError};
use crate::vision::preprocess;
use crate::vision::resize::resize_bicubic_rgb8;
use crate::vision::tiling::*;

// -- grid order and choice ------------------------------------------------------------------

const SPEC_10: [(u32, u32); 27] = [
    (1, 1),
    (1, 2),
    (2, 1),
    (3, 1),
    (1, 3),
    (2, 2),
    (4, 1),
    (1, 4),
    (5, 1),
    (1, 5),
    (1, 6),
    (6, 1),
    (3, 2),
    (2, 3),
    (7, 1),
    (1, 7),
    (4, 2),
    (2, 4),
    (1, 8),
    (8, 1),
    (1, 9),
    (3, 3),
    (9, 1),
    (2, 5),
    (5, 2),
    (10, 1),
    (1, 10),
];
const SPEC_12_TAIL: [(u32, u32); 8] = [(11, 1), (1, 11), (12, 1), (3, 4), (4, 3), (1, 12), (6, 2), (2, 6)];

#[test]
fn tuple_hash_matches_cpython() {
    // Values printed by CPython 3.11 (64-bit): hash((1, 2)), hash((3, 4)), hash((64, 1)).
    assert_eq!(tuple_hash(&[1, 2]) as i64, -3_550_055_125_485_641_917);
    assert_eq!(tuple_hash(&[3, 4]) as i64, 1_079_245_023_883_434_373);
    assert_eq!(tuple_hash(&[64, 1]) as i64, 4_663_160_939_954_346_276);
}

#[test]
fn candidate_order_max_10_matches_spec() {
    assert_eq!(candidate_grids(1, 10), SPEC_10.to_vec());
}

#[test]
fn candidate_order_max_12_matches_spec() {
    let mut want = SPEC_10.to_vec();
    want.extend_from_slice(&SPEC_12_TAIL);
    assert_eq!(candidate_grids(1, 12), want);
}

#[test]
fn candidate_order_max_6_differs_from_prefix_of_10() {
    // The spec notes the order for 6 differs: the set is smaller, so its table is too.
    let six = candidate_grids(1, 6);
    let ten_prefix: Vec<_> = SPEC_10.iter().copied().filter(|&(i, j)| i * j <= 6).collect();
    assert_eq!(six.len(), ten_prefix.len());
    assert_ne!(six, ten_prefix);
    assert_eq!(six, vec![(1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1), (6, 1), (2, 3), (1, 6), (3, 2)]);
}

#[test]
fn candidates_cover_exactly_the_products() {
    for max in 1..=MAX_TILES_LIMIT {
        for min in 1..=max.min(5) {
            let c = candidate_grids(min, max);
            let want = (1..=max).flat_map(|i| (1..=max).map(move |j| (i, j))).filter(|&(i, j)| min <= i * j && i * j <= max).count();
            assert_eq!(c.len(), want, "min {min} max {max}");
            assert!(c.windows(2).all(|w| w[0].0 * w[0].1 <= w[1].0 * w[1].1));
        }
    }
    assert!(candidate_grids(5, 4).is_empty());
}

#[test]
fn square_1000_gets_3x3() {
    assert_eq!(select_grid(1000, 1000, 448, 1, 10), (3, 3));
    assert_eq!(tile_count((3, 3), true), 10);
}

#[test]
fn tie_rule_upgrades_only_large_images() {
    // Exact tie between (1,1), (2,2), (3,3): switch only while W*H > 0.5*S^2*i*j.
    // 0.5*448^2*4 = 401408: 633^2 = 400689 stays (1,1); 634^2 = 401956 moves to (2,2).
    assert_eq!(select_grid(633, 633, 448, 1, 10), (1, 1));
    assert_eq!(select_grid(634, 634, 448, 1, 10), (2, 2));
    // 0.5*448^2*9 = 903168: 950^2 = 902500 stays (2,2); 951^2 = 904401 moves to (3,3).
    assert_eq!(select_grid(950, 950, 448, 1, 10), (2, 2));
    assert_eq!(select_grid(951, 951, 448, 1, 10), (3, 3));
    // Tile size is a parameter, not a constant: the thresholds move with it.
    assert_eq!(select_grid(634, 634, 224, 1, 10), (3, 3));
    // Same aspect, different position in the list: 2:1 goes (2,1) -> (4,2) when large.
    assert_eq!(select_grid(800, 400, 448, 1, 10), (2, 1));
    assert_eq!(select_grid(2000, 1000, 448, 1, 10), (4, 2));
}

#[test]
fn strips_pick_the_extreme_grids() {
    assert_eq!(select_grid(1, 1000, 448, 1, 10), (1, 10));
    assert_eq!(select_grid(1000, 1, 448, 1, 10), (10, 1));
    assert_eq!(select_grid(1000, 10, 448, 1, 12), (12, 1));
    assert_eq!(select_grid(5, 7, 448, 1, 10), (2, 3));
}

#[test]
fn thumbnail_only_with_more_than_one_tile() {
    assert_eq!(tile_count((1, 1), true), 1);
    assert_eq!(tile_count((2, 1), true), 3);
    assert_eq!(tile_count((2, 1), false), 2);
    assert_eq!(tile_count((1, 1), false), 1);
}

#[test]
fn max_one_is_always_single_tile() {
    assert_eq!(candidate_grids(1, 1), vec![(1, 1)]);
    assert_eq!(select_grid(4000, 100, 448, 1, 1), (1, 1));
}

// -- cutting the tiles ------------------------------------------------------------------------

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
