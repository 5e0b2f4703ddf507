//! ggml tensor types and the quantizers behind them.
//!
//! Block and type sizes are asked from ggml itself rather than mirrored, so a GGUF we write is
//! laid out exactly as the ggml that reads it expects.

use super::sys;
use rayon::prelude::*;
use std::ffi::CStr;

/// The ggml tensor types sail writes or reads (named as ggml names them).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q5_0,
    Q5_1,
    Q4_K,
    Q5_K,
    Q6_K,
}

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

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl GgmlType {
    pub const ALL: [GgmlType; 10] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    pub(crate) fn raw(self) -> sys::ggml_type {
        match self {
            GgmlType::F32 => sys::GGML_TYPE_F32,
            GgmlType::F16 => sys::GGML_TYPE_F16,
            GgmlType::BF16 => sys::GGML_TYPE_BF16,
            GgmlType::Q8_0 => sys::GGML_TYPE_Q8_0,
            GgmlType::Q4_0 => sys::GGML_TYPE_Q4_0,
            GgmlType::Q5_0 => sys::GGML_TYPE_Q5_0,
            GgmlType::Q5_1 => sys::GGML_TYPE_Q5_1,
            GgmlType::Q4_K => sys::GGML_TYPE_Q4_K,
            GgmlType::Q5_K => sys::GGML_TYPE_Q5_K,
            GgmlType::Q6_K => sys::GGML_TYPE_Q6_K,
        }
    }

    /// The GGUF/ggml numeric id of this type.
    pub fn id(self) -> u32 {
        self.raw() as u32
    }

    /// The type with GGUF/ggml numeric id `id`, if sail knows it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// ggml's own name of a type id (also for types sail does not use), e.g. `q4_K`.
    pub fn name_of_id(id: u32) -> String {
        // SAFETY: ggml_type_name indexes a static table and returns a static string, or
        // "NONE" for ids past the table; it never dereferences caller memory.
        let p = unsafe { sys::ggml_type_name(id as sys::ggml_type) };
        if p.is_null() {
            return format!("type#{id}");
        }
        // SAFETY: non-null pointer to a static NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// ggml's name, e.g. `q4_K`.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "f32",
            GgmlType::F16 => "f16",
            GgmlType::BF16 => "bf16",
            GgmlType::Q8_0 => "q8_0",
            GgmlType::Q4_0 => "q4_0",
            GgmlType::Q5_0 => "q5_0",
            GgmlType::Q5_1 => "q5_1",
            GgmlType::Q4_K => "q4_K",
            GgmlType::Q5_K => "q5_K",
            GgmlType::Q6_K => "q6_K",
        }
    }

    /// Values per block.
    pub fn block_size(self) -> usize {
        // SAFETY: pure lookup in ggml's static type traits table for a valid type id.
        unsafe { sys::ggml_blck_size(self.raw()) as usize }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        // SAFETY: pure lookup in ggml's static type traits table for a valid type id.
        unsafe { sys::ggml_type_size(self.raw()) }
    }

    pub fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Bytes of one row of `n_per_row` values, if the row divides into whole blocks.
    pub fn row_bytes(self, n_per_row: usize) -> Option<usize> {
        let b = self.block_size();
        (n_per_row % b == 0).then(|| n_per_row / b * self.type_size())
    }

    /// Bytes of a tensor with ggml dims `ne` (ne[0] innermost), if ne[0] divides into blocks.
    pub fn tensor_bytes(self, ne: &[u64]) -> Option<usize> {
        let n0 = *ne.first()? as usize;
        let rows: u64 = ne[1..].iter().product();
        self.row_bytes(n0).map(|r| r * rows as usize)
    }

    fn check_rows(self, len: usize, n_per_row: usize) -> Result<usize, QuantizeError> {
        if n_per_row == 0 || len % n_per_row != 0 {
            return Err(QuantizeError::PartialRow { len, n_per_row });
        }
        if n_per_row % self.block_size() != 0 {
            return Err(QuantizeError::RowNotBlockAligned { ty: self, block: self.block_size(), n_per_row });
        }
        Ok(len / n_per_row)
    }

    /// Converts f32 rows to this type with ggml's own quantizer (reference-quality, no
    /// importance matrix), spreading row chunks over the rayon pool.
    pub fn quantize(self, src: &[f32], n_per_row: usize) -> Result<Vec<u8>, QuantizeError> {
        let nrows = self.check_rows(src.len(), n_per_row)?;
        // SAFETY: pure query of a static property of a valid type id.
        if unsafe { sys::ggml_quantize_requires_imatrix(self.raw()) } {
            return Err(QuantizeError::NeedsImatrix { ty: self });
        }
        let row_bytes = self.row_bytes(n_per_row).expect("checked above");
        let mut dst = vec![0u8; nrows * row_bytes];
        if self == GgmlType::F32 {
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&s.to_le_bytes());
            }
            return Ok(dst);
        }
        // SAFETY: initialises ggml's lookup tables for this type; idempotent and internally
        // synchronised, called before any worker touches the type.
        unsafe { sys::ggml_quantize_init(self.raw()) };
        // ~256 KiB of source per task keeps rayon busy without tiny tasks.
        let rows_per_task = (65536 / n_per_row).max(1);
        dst.par_chunks_mut(rows_per_task * row_bytes)
            .zip(src.par_chunks(rows_per_task * n_per_row))
            .for_each(|(d, s)| {
                let rows = s.len() / n_per_row;
                debug_assert_eq!(d.len(), rows * row_bytes);
                // SAFETY: `s` holds exactly `rows * n_per_row` f32 values and `d` exactly
                // `rows * row_bytes` bytes, the size ggml_quantize_chunk writes for `rows` rows
                // of this type (row_bytes comes from ggml's own type traits); start = 0 so ggml
                // indexes only within these slices; no imatrix is passed (checked above that
                // the type does not need one).
                let written = unsafe {
                    sys::ggml_quantize_chunk(
                        self.raw(),
                        s.as_ptr(),
                        d.as_mut_ptr().cast(),
                        0,
                        rows as i64,
                        n_per_row as i64,
                        std::ptr::null(),
                    )
                };
                assert_eq!(written, d.len(), "ggml_quantize_chunk wrote an unexpected size");
            });
        Ok(dst)
    }

    /// Converts rows of this type back to f32 with ggml's `to_float`.
    pub fn dequantize(self, data: &[u8], n_values: usize) -> Result<Vec<f32>, QuantizeError> {
        let b = self.block_size();
        let expected = if n_values % b == 0 { n_values / b * self.type_size() } else { usize::MAX };
        if data.len() != expected {
            return Err(QuantizeError::BadByteLength { ty: self, got: data.len(), expected });
        }
        let mut out = vec![0f32; n_values];
        if self == GgmlType::F32 {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            return Ok(out);
        }
        // SAFETY: ggml_get_type_traits returns a pointer into ggml's static traits table.
        let traits = unsafe { &*sys::ggml_get_type_traits(self.raw()) };
        let to_float = traits.to_float.expect("every sail type has a to_float");
        // SAFETY: `data` holds exactly n_values/block blocks of this type (checked above) and
        // `out` has room for n_values floats, which is what to_float reads and writes.
        unsafe { to_float(data.as_ptr().cast(), out.as_mut_ptr(), n_values as i64) };
        Ok(out)
    }
}
