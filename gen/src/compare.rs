//! `sail-gen compare`: the error measures of the parity tests (NMSE, max relative error) for two
//! `.npy` files, printed as JSON. It exists for machines that run sail's binaries but have no
//! Rust toolchain and no numpy (the lent GPU machine of scripts/check-cuda.sh), so the device
//! check can judge its own outputs with the same formulas as `sail-testkit::metrics`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A little-endian f32 array in C order, as `sail run --logits-out/--embeddings-out` and the
/// golden cases store them.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadInput { path: path.to_path_buf(), msg: msg.into() }
}

/// Reads a version 1.0/2.0/3.0 `.npy` file holding `<f4` data in C order.
pub fn read_npy_f32(path: &Path) -> Result<NpyF32> {
    let b = std::fs::read(path).map_err(|e| Error::read(path, e))?;
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad(path, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (hlen, hstart): (usize, usize) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(bad(path, format!("unsupported .npy version {v}"))),
    };
    let body = hstart.checked_add(hlen).filter(|&e| e <= b.len()).ok_or_else(|| bad(path, "truncated .npy header"))?;
    let header = std::str::from_utf8(&b[hstart..body]).map_err(|_| bad(path, "the .npy header is not text"))?;
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains("'descr':'<f4'") {
        return Err(bad(path, format!("expected little-endian f32 ('<f4'), header {}", header.trim())));
    }
    if compact.contains("'fortran_order':True") {
        return Err(bad(path, "Fortran-order arrays are not supported"));
    }
    let s = compact.find("'shape':(").ok_or_else(|| bad(path, format!("no shape in header {}", header.trim())))? + "'shape':(".len();
    let e = s + compact[s..].find(')').ok_or_else(|| bad(path, "unterminated shape"))?;
    let shape = compact[s..e]
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<usize>().map_err(|_| bad(path, format!("bad dimension {x:?} in shape"))))
        .collect::<Result<Vec<_>>>()?;
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| bad(path, "shape overflows"))?;
    let payload = &b[body..];
    if payload.len() != n.checked_mul(4).ok_or_else(|| bad(path, "shape overflows"))? {
        return Err(bad(path, format!("{} data bytes for shape {shape:?} (want {})", payload.len(), n * 4)));
    }
    let data = payload.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NpyF32 { shape, data })
}

/// How far `got` is from `reference` (the measures of `sail-testkit::metrics`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub got: PathBuf,
    pub reference: PathBuf,
    pub shape: Vec<usize>,
    /// Σ(got−ref)² / Σref²
    pub nmse: f64,
    /// max |got−ref| / max |ref|
    pub max_rel: f64,
    /// max |got−ref|
    pub max_abs: f64,
    /// √(Σ(got−ref)²/n) and √(Σref²/n): the golden cases' token rule is written in these
    pub rms_diff: f64,
    pub rms_ref: f64,
    /// Index of the largest value of each array (the greedy token for logits).
    pub argmax_got: usize,
    pub argmax_ref: usize,
    /// Non-finite values in `got` (a NaN fails every bound through `nmse`).
    pub non_finite: usize,
}

fn argmax(a: &[f32]) -> usize {
    a.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

/// Compares two arrays of the same shape.
pub fn compare(got: &Path, reference: &Path) -> Result<Comparison> {
    let a = read_npy_f32(got)?;
    let r = read_npy_f32(reference)?;
    if a.shape != r.shape {
        return Err(bad(got, format!("shape {:?} differs from {}'s {:?}", a.shape, reference.display(), r.shape)));
    }
    let (mut num, mut den, mut max_abs, mut ref_max) = (0f64, 0f64, 0f64, 0f64);
    let n = a.data.len().max(1) as f64;
    for (&x, &y) in a.data.iter().zip(&r.data) {
        let d = x as f64 - y as f64;
        num += d * d;
        den += (y as f64) * (y as f64);
        // NaN propagates into num; f64::max would drop it from max_abs
        max_abs = if d.is_nan() || max_abs.is_nan() { f64::NAN } else { max_abs.max(d.abs()) };
        ref_max = ref_max.max((y as f64).abs());
    }
    Ok(Comparison {
        got: got.to_path_buf(),
        reference: reference.to_path_buf(),
        shape: a.shape,
        nmse: num / den.max(f64::MIN_POSITIVE),
        max_rel: max_abs / ref_max.max(f64::MIN_POSITIVE),
        max_abs,
        rms_diff: (num / n).sqrt(),
        rms_ref: (den / n).sqrt(),
        argmax_got: argmax(&a.data),
        argmax_ref: argmax(&r.data),
        non_finite: a.data.iter().filter(|v| !v.is_finite()).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, header: &str, data: &[f32]) {
        let mut h = header.to_string();
        let total = 10 + h.len() + 1;
        h.push_str(&" ".repeat((64 - total % 64) % 64));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        for v in data {
            b.extend(v.to_le_bytes());
        }
        std::fs::write(path, b).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sail-gen-compare-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn measures_match_hand_computed_values() {
        let (a, r) = (tmp("a.npy"), tmp("r.npy"));
        write(&a, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", &[1.0, 2.5, -3.0, 4.0]);
        write(&r, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", &[1.0, 2.0, -3.0, 5.0]);
        let c = compare(&a, &r).unwrap();
        assert_eq!(c.shape, vec![2, 2]);
        // Σd² = 0.25 + 1 = 1.25; Σr² = 1 + 4 + 9 + 25 = 39
        assert!((c.nmse - 1.25 / 39.0).abs() < 1e-15, "{}", c.nmse);
        assert_eq!(c.max_abs, 1.0);
        assert_eq!(c.max_rel, 1.0 / 5.0);
        assert_eq!((c.rms_diff, c.rms_ref), ((1.25f64 / 4.0).sqrt(), (39f64 / 4.0).sqrt()));
        assert_eq!((c.argmax_got, c.argmax_ref, c.non_finite), (3, 3, 0));
        let same = compare(&r, &r).unwrap();
        assert_eq!((same.nmse, same.max_rel), (0.0, 0.0));
    }

    #[test]
    fn nan_and_bad_files_do_not_pass() {
        let (a, r) = (tmp("nan.npy"), tmp("ref.npy"));
        write(&a, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", &[1.0, f32::NAN, 0.0]);
        write(&r, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", &[1.0, 2.0, 0.0]);
        let c = compare(&a, &r).unwrap();
        // NaN compares false with every bound, so `nmse <= bound` fails
        assert!(c.nmse.is_nan() && c.max_rel.is_nan() && c.non_finite == 1);

        let other = tmp("other.npy");
        write(&other, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }", &[1.0, 2.0, 0.0]);
        let e = compare(&other, &r).unwrap_err().to_string();
        assert!(e.contains("shape [1, 3]") && e.contains("[3]"), "{e}");

        let f8 = tmp("f8.npy");
        write(&f8, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", &[0.0, 0.0]);
        assert!(read_npy_f32(&f8).unwrap_err().to_string().contains("'<f4'"));

        let short = tmp("short.npy");
        write(&short, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", &[1.0]);
        assert!(read_npy_f32(&short).unwrap_err().to_string().contains("data bytes"));

        let junk = tmp("junk.npy");
        std::fs::write(&junk, b"hello").unwrap();
        assert!(read_npy_f32(&junk).unwrap_err().to_string().contains("not a .npy"));
        assert!(read_npy_f32(&tmp("missing.npy")).unwrap_err().to_string().contains("missing.npy"));
    }
}
