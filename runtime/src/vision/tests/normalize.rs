//! Normalisation: torchvision's arithmetic, planar output.

use super::{MEAN, STD};
use crate::vision::normalize::normalize;
use crate::vision::tiling::TilesU8;

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
