//! The error measures the parity tests quote.

/// Normalised mean squared error: Σ(a−r)² / Σr².
pub fn nmse(a: &[f32], r: &[f32]) -> f64 {
    assert_eq!(a.len(), r.len(), "length mismatch");
    let num: f64 = a.iter().zip(r).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let den: f64 = r.iter().map(|&y| (y as f64).powi(2)).sum();
    num / den.max(f64::MIN_POSITIVE)
}

/// max |a−r| / max |r|.
pub fn max_rel(a: &[f32], r: &[f32]) -> f64 {
    assert_eq!(a.len(), r.len(), "length mismatch");
    let d = a.iter().zip(r).map(|(&x, &y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max);
    let m = r.iter().map(|&y| (y as f64).abs()).fold(0.0, f64::max);
    d / m.max(f64::MIN_POSITIVE)
}

pub fn rms(a: &[f32]) -> f64 {
    (a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64).sqrt()
}

pub fn argmax(a: &[f32]) -> usize {
    a.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}
