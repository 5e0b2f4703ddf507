//! Resampling that reproduces Pillow's `Image.resize` bit for bit (8-bit and 16-bit bicubic,
//! nearest, and the premultiplied-alpha path Pillow takes for `LA`/`RGBA`).
//!
//! Why not a generic resizer: SAIL's reference pipeline resizes with Pillow, and the vision tower
//! sees those exact bytes. A "bicubic" from another library (different kernel support when
//! downscaling, float intermediates, other rounding) moves most output values by a level or
//! two. That is small per pixel, but it shows up in every parity figure downstream. So this file
//! follows Pillow's algorithm rather than a textbook one. Written from the algorithm, not copied:
//!
//! * Separable convolution with the Keys cubic (a = -0.5). When shrinking, the kernel is stretched
//!   by the scale factor (antialiasing), so the support grows with the downscale.
//! * Per output sample, the weights are computed in double, normalised to sum 1, and (for 8-bit
//!   images) rounded to signed fixed point with 22 fractional bits. The sum starts at one half
//!   (for rounding), is shifted back and clamped to 0..=255. The pass result is stored as 8 bits
//!   before the other pass runs. 16-bit images keep double weights and round half away from zero.
//! * Pass order: Pillow up to 12 always runs the horizontal pass first. Pillow 13.0 (the version
//!   the reference harness pins) runs the vertical pass first when the height shrinks by more
//!   than twice as many pixels as the width does. Because of the 8-bit rounding between passes,
//!   the order changes results, so it is a parameter ([`PassOrder`]). With the Pillow 13 rule,
//!   the intermediate image is never larger than the larger of input and output.
//! * An axis whose size does not change is not filtered at all, and equal sizes are a plain copy.
//!
//! No fused multiply-add anywhere: Pillow's x86-64 wheels do not contract `a * b + c`, and Rust
//! never does. Pillow builds that contract (e.g. GCC on aarch64 by default) can differ from us and
//! from x86-64 Pillow in rare last-bit cases of the double weights.

use std::num::NonZeroUsize;

/// 8 bits for the result plus 2 bits of headroom for the negative lobes, out of 32.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Bicubic support radius in source pixels at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;

/// Which pass Pillow runs first when both dimensions change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassOrder {
    /// Pillow >= 13.0: vertical first iff the height shrinks and
    /// `in_h - out_h > 2 * (in_w - out_w)`, horizontal first otherwise.
    #[default]
    Pillow13,
    /// Pillow <= 12: always horizontal first.
    HorizontalFirst,
}

impl PassOrder {
    fn vertical_first(self, in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
        match self {
            PassOrder::HorizontalFirst => false,
            PassOrder::Pillow13 => {
                let (dh, dw) = (in_h as i64 - out_h as i64, in_w as i64 - out_w as i64);
                out_h < in_h && dh > 2 * dw
            }
        }
    }
}

/// Bicubic resize of an 8-bit interleaved image with `channels` (1..=4) samples per pixel,
/// equal to Pillow 13's `Image.resize((out_w, out_h), BICUBIC)` on an `L`/`RGB`/`RGBX`-like image.
///
/// # Panics
/// If `channels` is not 1..=4, a size is zero, or `src.len() != width * height * channels`.
pub fn resize_bicubic_u8(src: &[u8], width: u32, height: u32, channels: usize, out_w: u32, out_h: u32) -> Vec<u8> {
    resize_bicubic_u8_with_order(src, width, height, channels, out_w, out_h, PassOrder::default())
}

/// [`resize_bicubic_u8`] for RGB (3 channels).
///
/// # Panics
/// As [`resize_bicubic_u8`].
pub fn resize_bicubic_rgb8(src: &[u8], width: u32, height: u32, out_w: u32, out_h: u32) -> Vec<u8> {
    resize_bicubic_u8(src, width, height, 3, out_w, out_h)
}

/// [`resize_bicubic_u8`] with an explicit pass order (e.g. to match Pillow <= 12).
///
/// # Panics
/// As [`resize_bicubic_u8`].
pub fn resize_bicubic_u8_with_order(
    src: &[u8],
    width: u32,
    height: u32,
    channels: usize,
    out_w: u32,
    out_h: u32,
    order: PassOrder,
) -> Vec<u8> {
    let (w, h, ow, oh) = (width as usize, height as usize, out_w as usize, out_h as usize);
    check_args(src.len(), w, h, channels, ow, oh);
    if (w, h) == (ow, oh) {
        return src.to_vec();
    }
    let horizontal = |img: &[u8], rows: usize| -> Vec<u8> {
        let kern = FixedKernel::new(&Kernel::bicubic(w, ow));
        match channels {
            1 => horizontal_u8::<1>(img, w, rows, ow, &kern),
            2 => horizontal_u8::<2>(img, w, rows, ow, &kern),
            3 => horizontal_u8::<3>(img, w, rows, ow, &kern),
            _ => horizontal_u8::<4>(img, w, rows, ow, &kern),
        }
    };
    let vertical = |img: &[u8], cols: usize| -> Vec<u8> {
        let kern = FixedKernel::new(&Kernel::bicubic(h, oh));
        vertical_u8(img, cols * channels, oh, &kern)
    };
    run_passes(src, w, h, ow, oh, order, horizontal, vertical)
}

/// Bicubic resize of a 16-bit single-channel image, equal to Pillow 13's resize of an `I;16`
/// image (double weights, round half away from zero, clamp to 0..=65535).
///
/// # Panics
/// If a size is zero or `src.len() != width * height`.
pub fn resize_bicubic_u16(src: &[u16], width: u32, height: u32, out_w: u32, out_h: u32) -> Vec<u16> {
    resize_bicubic_u16_with_order(src, width, height, out_w, out_h, PassOrder::default())
}

/// [`resize_bicubic_u16`] with an explicit pass order.
///
/// # Panics
/// As [`resize_bicubic_u16`].
pub fn resize_bicubic_u16_with_order(src: &[u16], width: u32, height: u32, out_w: u32, out_h: u32, order: PassOrder) -> Vec<u16> {
    let (w, h, ow, oh) = (width as usize, height as usize, out_w as usize, out_h as usize);
    check_args(src.len(), w, h, 1, ow, oh);
    if (w, h) == (ow, oh) {
        return src.to_vec();
    }
    let horizontal = |img: &[u16], rows: usize| horizontal_u16(img, w, rows, ow, &Kernel::bicubic(w, ow));
    let vertical = |img: &[u16], cols: usize| vertical_u16(img, cols, oh, &Kernel::bicubic(h, oh));
    run_passes(src, w, h, ow, oh, order, horizontal, vertical)
}

/// Pillow's resize of an `LA` (`channels == 2`) or `RGBA` (`channels == 4`) image with a
/// non-nearest filter: premultiply alpha (`RGBa`/`La`), bicubic resize, unpremultiply.
/// Equal sizes are a plain copy, as in Pillow (which returns before premultiplying).
///
/// # Panics
/// If `channels` is not 2 or 4, a size is zero, or the buffer length does not match.
pub fn resize_bicubic_premultiplied(src: &[u8], width: u32, height: u32, channels: usize, out_w: u32, out_h: u32) -> Vec<u8> {
    assert!(channels == 2 || channels == 4, "premultiplied resize needs 2 or 4 channels, got {channels}");
    check_args(src.len(), width as usize, height as usize, channels, out_w as usize, out_h as usize);
    if (width, height) == (out_w, out_h) {
        return src.to_vec();
    }
    let mut pre = src.to_vec();
    premultiply_alpha(&mut pre, channels);
    let mut out = resize_bicubic_u8(&pre, width, height, channels, out_w, out_h);
    unpremultiply_alpha(&mut out, channels);
    out
}

/// Pillow's NEAREST resize (what `Image.resize` uses for `P` and `1` images whatever filter is
/// asked for): source index `floor(x0 + (k + 0.5) * in / out)`, with the position accumulated by
/// repeated addition in double exactly as Pillow's affine scaler does.
///
/// # Panics
/// If a size is zero or `src.len() != width * height * channels`.
pub fn resize_nearest<T: Copy + Default>(src: &[T], width: u32, height: u32, channels: usize, out_w: u32, out_h: u32) -> Vec<T> {
    let (w, h, ow, oh) = (width as usize, height as usize, out_w as usize, out_h as usize);
    check_args(src.len(), w, h, channels, ow, oh);
    if (w, h) == (ow, oh) {
        return src.to_vec();
    }
    let xs = nearest_indices(w, ow);
    let ys = nearest_indices(h, oh);
    let mut out = vec![T::default(); ow * oh * channels];
    for (yy, &sy) in ys.iter().enumerate() {
        let Some(sy) = sy else { continue };
        let src_row = &src[sy * w * channels..(sy + 1) * w * channels];
        let dst_row = &mut out[yy * ow * channels..(yy + 1) * ow * channels];
        for (xx, &sx) in xs.iter().enumerate() {
            if let Some(sx) = sx {
                dst_row[xx * channels..(xx + 1) * channels].copy_from_slice(&src_row[sx * channels..(sx + 1) * channels]);
            }
        }
    }
    out
}

/// Pillow's `RGBA -> RGBa` / `LA -> La`: each colour sample becomes `round(c * a / 255)`
/// computed as `(t + (t >> 8)) >> 8` with `t = c * a + 128`. Alpha is the last channel.
pub fn premultiply_alpha(buf: &mut [u8], channels: usize) {
    for px in buf.chunks_exact_mut(channels) {
        let (colour, alpha) = px.split_at_mut(channels - 1);
        let a = u32::from(alpha[0]);
        for c in colour {
            let t = u32::from(*c) * a + 128;
            *c = (((t >> 8) + t) >> 8) as u8;
        }
    }
}

/// Pillow's `RGBa -> RGBA` / `La -> LA`: colour `min(255, 255 * c / a)` with integer division;
/// pixels with alpha 0 or 255 are left as they are.
pub fn unpremultiply_alpha(buf: &mut [u8], channels: usize) {
    for px in buf.chunks_exact_mut(channels) {
        let (colour, alpha) = px.split_at_mut(channels - 1);
        let a = u32::from(alpha[0]);
        if a == 0 || a == 255 {
            continue;
        }
        for c in colour {
            *c = ((255 * u32::from(*c)) / a).min(255) as u8;
        }
    }
}

// ----------------------------------------------------------------------------------------------

fn check_args(len: usize, w: usize, h: usize, channels: usize, ow: usize, oh: usize) {
    assert!((1..=4).contains(&channels), "channels must be 1..=4, got {channels}");
    assert!(w > 0 && h > 0 && ow > 0 && oh > 0, "zero-sized resize {w}x{h} -> {ow}x{oh}");
    assert_eq!(Some(len), w.checked_mul(h).and_then(|p| p.checked_mul(channels)), "buffer length does not match {w}x{h}x{channels}");
}

/// Runs the one or two passes in Pillow's order. `horizontal(img, rows)` filters rows of an image
/// `w` wide; `vertical(img, cols)` filters columns of an image `cols` wide and `h` tall.
#[allow(clippy::too_many_arguments)]
fn run_passes<T: Copy>(
    src: &[T],
    w: usize,
    h: usize,
    ow: usize,
    oh: usize,
    order: PassOrder,
    horizontal: impl Fn(&[T], usize) -> Vec<T>,
    vertical: impl Fn(&[T], usize) -> Vec<T>,
) -> Vec<T> {
    let need_h = ow != w;
    let need_v = oh != h;
    match (need_h, need_v) {
        (true, false) => horizontal(src, h),
        (false, true) => vertical(src, w),
        (true, true) => {
            if order.vertical_first(w, h, ow, oh) {
                let tmp = vertical(src, w);
                horizontal(&tmp, oh)
            } else {
                // With a full-image box every source row contributes, so the intermediate holds
                // all `h` rows (Pillow's ybox trimming removes nothing here).
                let tmp = horizontal(src, h);
                vertical(&tmp, ow)
            }
        }
        (false, false) => src.to_vec(),
    }
}

/// Keys cubic with a = -0.5, evaluated in the same operation order as Pillow.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Normalised double weights for one axis: output sample `o` reads `len[o]` source samples from
/// `start[o]`, with weights `weights[o * ksize ..][.. len[o]]`.
struct Kernel {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    weights: Vec<f64>,
}

impl Kernel {
    fn bicubic(in_size: usize, out_size: usize) -> Kernel {
        // Pillow passes the box edges as C floats; sizes here are far below 2^24, so exact.
        let in0 = 0.0f32;
        let in1 = in_size as f32;
        let scale = f64::from(in1 - in0) / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut start = Vec::with_capacity(out_size);
        let mut len = Vec::with_capacity(out_size);
        let mut weights = vec![0.0f64; out_size * ksize];
        let inv = 1.0 / filterscale;
        for (o, k) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = f64::from(in0) + (o as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; so does `as i64`.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0f64;
            for (x, kx) in k.iter_mut().take(n).enumerate() {
                let w = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * inv);
                *kx = w;
                ww += w;
            }
            if ww != 0.0 {
                for kx in k.iter_mut().take(n) {
                    *kx /= ww;
                }
            }
            start.push(xmin as usize);
            len.push(n);
        }
        Kernel { ksize, start, len, weights }
    }

    fn taps(&self, o: usize) -> (usize, &[f64]) {
        let k = &self.weights[o * self.ksize..o * self.ksize + self.len[o]];
        (self.start[o], k)
    }
}

/// The 8-bit form of a [`Kernel`]: weights in signed fixed point.
struct FixedKernel {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    weights: Vec<i32>,
}

impl FixedKernel {
    fn new(k: &Kernel) -> FixedKernel {
        let one = f64::from(1u32 << PRECISION_BITS);
        let weights = k.weights.iter().map(|&w| if w < 0.0 { (-0.5 + w * one) as i32 } else { (0.5 + w * one) as i32 }).collect();
        FixedKernel { ksize: k.ksize, start: k.start.clone(), len: k.len.clone(), weights }
    }

    fn taps(&self, o: usize) -> (usize, &[i32]) {
        let k = &self.weights[o * self.ksize..o * self.ksize + self.len[o]];
        (self.start[o], k)
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

fn horizontal_u8<const C: usize>(src: &[u8], w: usize, rows: usize, ow: usize, kern: &FixedKernel) -> Vec<u8> {
    let mut out = vec![0u8; ow * rows * C];
    let cost = ow * C * (kern.ksize + 1);
    par_rows(&mut out, ow * C, cost, |first, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(ow * C).enumerate() {
            let y = first + r;
            let row = &src[y * w * C..(y + 1) * w * C];
            for (xx, px) in dst.chunks_exact_mut(C).enumerate() {
                let (x0, k) = kern.taps(xx);
                let mut acc = [HALF; C];
                for (t, &kt) in k.iter().enumerate() {
                    let s = &row[(x0 + t) * C..(x0 + t + 1) * C];
                    for c in 0..C {
                        acc[c] += i32::from(s[c]) * kt;
                    }
                }
                for c in 0..C {
                    px[c] = clip8(acc[c]);
                }
            }
        }
    });
    out
}

fn vertical_u8(src: &[u8], row_len: usize, oh: usize, kern: &FixedKernel) -> Vec<u8> {
    let mut out = vec![0u8; row_len * oh];
    let cost = row_len * (kern.ksize + 1);
    par_rows(&mut out, row_len, cost, |first, chunk| {
        let mut acc = vec![0i32; row_len];
        for (r, dst) in chunk.chunks_exact_mut(row_len).enumerate() {
            let (y0, k) = kern.taps(first + r);
            acc.fill(HALF);
            // Integer sums are order-independent, so accumulate row by row (vectorises).
            for (t, &kt) in k.iter().enumerate() {
                let s = &src[(y0 + t) * row_len..(y0 + t + 1) * row_len];
                for (a, &v) in acc.iter_mut().zip(s) {
                    *a += i32::from(v) * kt;
                }
            }
            for (d, &a) in dst.iter_mut().zip(&acc) {
                *d = clip8(a);
            }
        }
    });
    out
}

/// Pillow's `ROUND_UP` (half away from zero, then truncation) followed by a clamp to u16.
#[inline]
fn round_clip16(ss: f64) -> u16 {
    let v = if ss >= 0.0 { (ss + 0.5) as i64 } else { (ss - 0.5) as i64 };
    v.clamp(0, 65535) as u16
}

fn horizontal_u16(src: &[u16], w: usize, rows: usize, ow: usize, kern: &Kernel) -> Vec<u16> {
    let mut out = vec![0u16; ow * rows];
    let cost = ow * (kern.ksize + 1);
    par_rows(&mut out, ow, cost, |first, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(ow).enumerate() {
            let y = first + r;
            let row = &src[y * w..(y + 1) * w];
            for (xx, d) in dst.iter_mut().enumerate() {
                let (x0, k) = kern.taps(xx);
                let mut ss = 0.0f64;
                for (t, &kt) in k.iter().enumerate() {
                    ss += f64::from(row[x0 + t]) * kt;
                }
                *d = round_clip16(ss);
            }
        }
    });
    out
}

fn vertical_u16(src: &[u16], row_len: usize, oh: usize, kern: &Kernel) -> Vec<u16> {
    let mut out = vec![0u16; row_len * oh];
    let cost = row_len * (kern.ksize + 1);
    par_rows(&mut out, row_len, cost, |first, chunk| {
        let mut acc = vec![0f64; row_len];
        for (r, dst) in chunk.chunks_exact_mut(row_len).enumerate() {
            let (y0, k) = kern.taps(first + r);
            acc.fill(0.0);
            // Same per-sample summation order as Pillow (tap 0 first), so identical doubles.
            for (t, &kt) in k.iter().enumerate() {
                let s = &src[(y0 + t) * row_len..(y0 + t + 1) * row_len];
                for (a, &v) in acc.iter_mut().zip(s) {
                    *a += f64::from(v) * kt;
                }
            }
            for (d, &a) in dst.iter_mut().zip(&acc) {
                *d = round_clip16(a);
            }
        }
    });
    out
}

/// Source index per output index for NEAREST, `None` where Pillow leaves its zero fill.
fn nearest_indices(in_size: usize, out_size: usize) -> Vec<Option<usize>> {
    let step = in_size as f64 / out_size as f64;
    let mut pos = 0.0 + step * 0.5;
    let mut v = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        // Pillow's COORD: -1 for negatives, else truncation.
        let idx = if pos < 0.0 { None } else { Some(pos as usize) };
        v.push(idx.filter(|&i| i < in_size));
        pos += step;
    }
    v
}

/// Work (multiply-adds) below which splitting across threads costs more than it saves.
const PAR_MIN_WORK: usize = 1 << 20;

/// Calls `f(first_row, rows)` over disjoint chunks of whole output rows, on scoped threads when
/// the job is large enough. Results do not depend on the split.
fn par_rows<T: Send>(out: &mut [T], row_len: usize, cost_per_row: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / row_len;
    let threads = std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1).min(rows);
    if threads <= 1 || rows.saturating_mul(cost_per_row) < PAR_MIN_WORK {
        f(0, out);
        return;
    }
    let rows_per = rows.div_ceil(threads);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(rows_per * row_len).enumerate() {
            let f = &f;
            s.spawn(move || f(i * rows_per, chunk));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_copy() {
        let src: Vec<u8> = (0..5 * 3 * 3).map(|v| (v * 7) as u8).collect();
        assert_eq!(resize_bicubic_u8(&src, 5, 3, 3, 5, 3), src);
        let rgba: Vec<u8> = (0..4 * 4 * 4).map(|v| (v * 13) as u8).collect();
        // Pillow returns a copy before premultiplying, so even alpha 0 pixels keep their colour.
        assert_eq!(resize_bicubic_premultiplied(&rgba, 4, 4, 4, 4, 4), rgba);
    }

    #[test]
    fn constant_image_stays_constant() {
        for &(w, h, ow, oh) in &[(7, 5, 3, 2), (3, 3, 448, 448), (100, 1, 4480, 448), (1, 100, 448, 4480)] {
            let src = vec![200u8; w * h * 3];
            let out = resize_bicubic_u8(&src, w as u32, h as u32, 3, ow, oh);
            assert!(out.iter().all(|&v| v == 200), "{w}x{h} -> {ow}x{oh}");
        }
    }

    #[test]
    fn weights_are_normalised() {
        for &(i, o) in &[(1000, 448), (448, 1000), (3, 448), (13, 7)] {
            let k = Kernel::bicubic(i, o);
            for x in 0..o {
                let (_, w) = k.taps(x);
                let s: f64 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn pass_order_rule() {
        let o = PassOrder::Pillow13;
        assert!(o.vertical_first(7, 84, 3, 70)); // 14 > 8
        assert!(!o.vertical_first(167, 145, 66, 20)); // 125 > 202 is false
        assert!(!o.vertical_first(128, 164, 66, 40)); // 124 == 124: horizontal
        assert!(o.vertical_first(1, 100_000, 448, 4480)); // tall strips shrink vertically first
        assert!(!o.vertical_first(100_000, 1, 4480, 448));
        assert!(!PassOrder::HorizontalFirst.vertical_first(7, 84, 3, 70));
    }

    #[test]
    fn premultiply_round_trip_examples() {
        let mut px = [200u8, 100, 0, 128];
        premultiply_alpha(&mut px, 4);
        assert_eq!(px, [100, 50, 0, 128]);
        unpremultiply_alpha(&mut px, 4);
        assert_eq!(px, [199, 99, 0, 128]);
        let mut la = [77u8, 0];
        premultiply_alpha(&mut la, 2);
        assert_eq!(la, [0, 0]);
    }

    #[test]
    fn nearest_picks_centres() {
        let src: Vec<u8> = (0..10).collect();
        assert_eq!(resize_nearest(&src, 10, 1, 1, 5, 1), vec![1, 3, 5, 7, 9]);
        assert_eq!(resize_nearest(&src[..2], 2, 1, 1, 4, 1), vec![0, 0, 1, 1]);
    }

    #[test]
    fn u16_clamps_overshoot() {
        // A hard 0/65535 edge rings past both ends; Pillow 13 clamps to 0..=65535.
        let src: Vec<u16> = (0..16).map(|i| if i < 8 { 0 } else { 65535 }).collect();
        let out = resize_bicubic_u16(&src, 16, 1, 37, 1);
        assert_eq!(out.first(), Some(&0));
        assert_eq!(out.last(), Some(&65535));
    }
}
