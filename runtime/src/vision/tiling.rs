//! SAIL-VL2's dynamic tiling geometry (InternVL's `dynamic_preprocess`), exact to the reference.
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

/// Largest `max_tiles` the simulation accepts. The set replay is cheap well beyond this, but
/// VLMEvalKit caps SAIL at 64 tiles per image and more tiles only cost memory.
pub const MAX_TILES_LIMIT: u32 = 64;

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
// CPython set replay (Objects/setobject.c and tuplehash in Objects/tupleobject.c, 64-bit).

const XXPRIME_1: u64 = 11_400_714_785_074_694_791;
const XXPRIME_2: u64 = 14_029_467_366_897_019_727;
const XXPRIME_5: u64 = 2_870_177_450_012_600_261;
const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;
const SET_MINSIZE: usize = 8;

/// `hash((i, j))` for small non-negative ints (whose hash is the value itself).
fn tuple_hash(items: &[u64]) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            six,
            vec![(1, 1), (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1), (6, 1), (2, 3), (1, 6), (3, 2)]
        );
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
}
