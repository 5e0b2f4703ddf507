//! Parity with Pillow: tests/python/preprocess_ref.py writes a corpus of images and the
//! reference's uint8 tiles; every lossless case must match tile for tile.

use super::{cfg, MEAN, STD};
use crate::vision::decode::{from_pixels_u8, load_image, DecodedImage, ImageLimits, PilMode};
use crate::vision::normalize::normalize;
use crate::vision::tiling::{candidate_grids, single_tile_u8, tiles_u8};
use std::collections::BTreeMap;
use std::path::Path;
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
    /// Units compared (tiles; whole images for decoder comparisons) and how many were identical.
    units: usize,
    units_identical: usize,
}

impl Stats {
    /// Compares `a` with `b` value by value and in units of `unit` bytes (one tile).
    fn add(&mut self, a: &[u8], b: &[u8], unit: usize) -> (f64, u8) {
        assert_eq!(a.len(), b.len(), "compared buffers differ in size");
        self.units += a.len().div_ceil(unit.max(1));
        self.units_identical += a.chunks(unit.max(1)).zip(b.chunks(unit.max(1))).filter(|(x, y)| x == y).count();
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
        let tile_bytes = (s * s * 3) as usize;
        if ours.grid != want_grid || ours.tiles != want_tiles {
            failures.push(format!("{case}: grid {:?} x{} but reference {want_grid:?} x{want_tiles}", ours.grid, ours.tiles));
            continue;
        }
        let label = if compare == "exact" { class.to_string() } else { format!("{class} (own decoder)") };
        let (frac, maxd) = stats.entry(label).or_default().add(&ours.data, &reference, tile_bytes);
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
            stats.entry(format!("{class} (decoder vs Pillow)")).or_default().add(img.samples_u8().unwrap(), &decoded, decoded.len());
            let pil = from_pixels_u8(dmode, w, h, decoded).unwrap();
            let t = run(&pil).unwrap();
            let (frac, maxd) = stats.entry(format!("{class} (Pillow-decoded pixels)")).or_default().add(&t.data, &reference, tile_bytes);
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
    println!("\n{:<36} {:>5} {:>12} {:>10} {:>5} {:>15}", "class", "cases", "values", "exact %", "max", "identical units");
    for (class, s) in &stats {
        println!(
            "{class:<36} {:>5} {:>12} {:>10.4} {:>5} {:>15}",
            s.cases,
            s.values,
            100.0 * s.exact as f64 / s.values.max(1) as f64,
            s.max_diff,
            format!("{}/{}", s.units_identical, s.units)
        );
    }
    // The lossless classes (decoded by us, compared exactly) in one figure.
    let lossless = stats.iter().filter(|(class, _)| !class.contains('('));
    let (images, tiles, same) = lossless.fold((0, 0, 0), |(i, t, k), (_, s)| (i + s.cases, t + s.units, k + s.units_identical));
    println!("lossless images: {images}, tiles identical to Pillow's: {same}/{tiles}");
    println!("candidate orders checked against CPython: {cand_checked}");
    assert_eq!(cand_checked, 64);
    if failures.is_empty() && generated {
        std::fs::remove_dir_all(&dir).ok();
    }
    assert!(failures.is_empty(), "parity failures (files kept in {}):\n{}", dir.display(), failures.join("\n"));
}
