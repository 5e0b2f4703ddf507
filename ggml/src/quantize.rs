//! ggml's own quantizers and dequantizers over row buffers (the converter's only use of ggml).

use super::sys;
use rayon::prelude::*;
use sail_format::GgmlType;

/// Errors from quantizing or dequantizing a row buffer.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("{ty} needs rows that are a multiple of {block} values; got rows of {n_per_row}")]
    RowNotBlockAligned { ty: GgmlType, block: usize, n_per_row: usize },
    #[error("{len} values do not form whole rows of {n_per_row}")]
    PartialRow { len: usize, n_per_row: usize },
    #[error("{ty}: buffer of {got} bytes, expected {expected}")]
    BadByteLength { ty: GgmlType, got: usize, expected: usize },
    #[error("ggml type {ty} needs an importance matrix, which sail does not provide")]
    NeedsImatrix { ty: GgmlType },
}

/// The bindgen constant for a sail type (ids are ggml's, checked in the tests).
pub(crate) fn raw_type(t: GgmlType) -> sys::ggml_type {
    t.id() as sys::ggml_type
}

fn check_rows(ty: GgmlType, len: usize, n_per_row: usize) -> Result<usize, QuantizeError> {
    if n_per_row == 0 || !len.is_multiple_of(n_per_row) {
        return Err(QuantizeError::PartialRow { len, n_per_row });
    }
    if !n_per_row.is_multiple_of(ty.block_size()) {
        return Err(QuantizeError::RowNotBlockAligned { ty, block: ty.block_size(), n_per_row });
    }
    Ok(len / n_per_row)
}

/// Converts f32 rows to `ty` with ggml's own quantizer (reference-quality, no importance
/// matrix), spreading row chunks over the rayon pool.
pub fn quantize(ty: GgmlType, src: &[f32], n_per_row: usize) -> Result<Vec<u8>, QuantizeError> {
    let nrows = check_rows(ty, src.len(), n_per_row)?;
    // SAFETY: pure query of a static property of a valid type id.
    if unsafe { sys::ggml_quantize_requires_imatrix(raw_type(ty)) } {
        return Err(QuantizeError::NeedsImatrix { ty });
    }
    let row_bytes = ty.row_bytes(n_per_row).expect("checked above");
    let mut dst = vec![0u8; nrows * row_bytes];
    if ty == GgmlType::F32 {
        for (d, s) in dst.chunks_exact_mut(4).zip(src) {
            d.copy_from_slice(&s.to_le_bytes());
        }
        return Ok(dst);
    }
    // SAFETY: initialises ggml's lookup tables for this type; idempotent and internally
    // synchronised, called before any worker touches the type.
    unsafe { sys::ggml_quantize_init(raw_type(ty)) };
    // ~256 KiB of source per task keeps rayon busy without tiny tasks.
    let rows_per_task = (65536 / n_per_row).max(1);
    dst.par_chunks_mut(rows_per_task * row_bytes).zip(src.par_chunks(rows_per_task * n_per_row)).for_each(|(d, s)| {
        let rows = s.len() / n_per_row;
        debug_assert_eq!(d.len(), rows * row_bytes);
        // SAFETY: `s` holds exactly `rows * n_per_row` f32 values and `d` exactly
        // `rows * row_bytes` bytes, the size ggml_quantize_chunk writes for `rows` rows of this
        // type (row_bytes is checked against ggml's own type traits in the tests); start = 0 so
        // ggml indexes only within these slices; no imatrix is passed (checked above that the
        // type does not need one).
        let written = unsafe {
            sys::ggml_quantize_chunk(raw_type(ty), s.as_ptr(), d.as_mut_ptr().cast(), 0, rows as i64, n_per_row as i64, std::ptr::null())
        };
        assert_eq!(written, d.len(), "ggml_quantize_chunk wrote an unexpected size");
    });
    Ok(dst)
}

/// Converts rows of `ty` back to f32 with ggml's `to_float`.
pub fn dequantize(ty: GgmlType, data: &[u8], n_values: usize) -> Result<Vec<f32>, QuantizeError> {
    let b = ty.block_size();
    let expected = if n_values.is_multiple_of(b) { (n_values / b).saturating_mul(ty.type_size()) } else { usize::MAX };
    if data.len() != expected {
        return Err(QuantizeError::BadByteLength { ty, got: data.len(), expected });
    }
    let mut out = vec![0f32; n_values];
    if ty == GgmlType::F32 {
        for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        return Ok(out);
    }
    // SAFETY: ggml_get_type_traits returns a pointer into ggml's static traits table for a
    // valid type id.
    let traits = unsafe { &*sys::ggml_get_type_traits(raw_type(ty)) };
    let to_float = traits.to_float.expect("every sail type has a to_float");
    // SAFETY: `data` holds exactly n_values/block blocks of this type (checked above) and `out`
    // has room for n_values floats, which is what to_float reads and writes.
    unsafe { to_float(data.as_ptr().cast(), out.as_mut_ptr(), n_values as i64) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// The plain-Rust type table in `sail-format` against the linked ggml's own traits.
    #[test]
    fn format_type_table_matches_ggml() {
        for t in GgmlType::ALL {
            let r = raw_type(t);
            // SAFETY: static lookups for valid ids.
            let (blck, size, name) = unsafe {
                (
                    sys::ggml_blck_size(r) as usize,
                    sys::ggml_type_size(r),
                    CStr::from_ptr(sys::ggml_type_name(r)).to_str().unwrap().to_string(),
                )
            };
            assert_eq!((blck, size, name.as_str()), (t.block_size(), t.type_size(), t.name()), "{t}");
        }
        assert_eq!(sail_format::types::GGML_TYPE_COUNT, sys::GGML_TYPE_COUNT);
        for id in 0..sys::GGML_TYPE_COUNT {
            // SAFETY: id < GGML_TYPE_COUNT, inside ggml's table.
            let p = unsafe { sys::ggml_type_name(id as sys::ggml_type) };
            // SAFETY: static NUL-terminated string.
            let ggml_name = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
            // SAFETY: static lookup.
            let size = unsafe { sys::ggml_type_size(id as sys::ggml_type) };
            if size == 0 {
                // a retired id: ggml keeps a placeholder entry
                assert!(GgmlType::name_of_id(id).starts_with("type#"), "id {id}");
            } else {
                assert_eq!(GgmlType::name_of_id(id), ggml_name, "id {id}");
            }
        }
    }

    #[test]
    fn quantize_round_trip() {
        let src: Vec<f32> = (0..512).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        for t in GgmlType::ALL {
            let q = quantize(t, &src, 256).unwrap();
            assert_eq!(q.len(), t.row_bytes(256).unwrap() * 2);
            let d = dequantize(t, &q, 512).unwrap();
            let err = src.iter().zip(&d).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 0.2, "{t}: {err}");
        }
        assert!(matches!(quantize(GgmlType::Q4_K, &src, 64), Err(QuantizeError::RowNotBlockAligned { .. })));
    }
}
