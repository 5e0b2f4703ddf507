//! The ggml tensor types sail reads and writes, as plain constants.
//!
//! A GGUF file is laid out by these numbers (block size, bytes per block), and a hostile file
//! must be judged by them *before* any of it reaches ggml, whose own lookups index static
//! tables without a bounds check in release builds (a type id of 2^31 read from a file used to
//! crash `sail info`). So the table lives here, in plain Rust; a test in `sail-ggml` checks
//! every value against the linked ggml.

/// The ggml tensor types sail writes or runs (named as ggml names them).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// `QK_K` in ggml-common.h: values per K-quant super-block.
pub const QK_K: usize = 256;
/// `QK8_0`, `QK4_0`, `QK5_0`, `QK5_1` in ggml-common.h.
pub const QK_LEGACY: usize = 32;

/// ggml's names of every type id up to `GGML_TYPE_COUNT` (ggml.h `enum ggml_type`); `None` for
/// ids ggml has retired.
const GGML_TYPE_NAMES: [Option<&str>; 43] = [
    Some("f32"),
    Some("f16"),
    Some("q4_0"),
    Some("q4_1"),
    None,
    None,
    Some("q5_0"),
    Some("q5_1"),
    Some("q8_0"),
    Some("q8_1"),
    Some("q2_K"),
    Some("q3_K"),
    Some("q4_K"),
    Some("q5_K"),
    Some("q6_K"),
    Some("q8_K"),
    Some("iq2_xxs"),
    Some("iq2_xs"),
    Some("iq3_xxs"),
    Some("iq1_s"),
    Some("iq4_nl"),
    Some("iq3_s"),
    Some("iq2_s"),
    Some("iq4_xs"),
    Some("i8"),
    Some("i16"),
    Some("i32"),
    Some("i64"),
    Some("f64"),
    Some("iq1_m"),
    Some("bf16"),
    None,
    None,
    None,
    Some("tq1_0"),
    Some("tq2_0"),
    None,
    None,
    None,
    Some("mxfp4"),
    Some("nvfp4"),
    Some("q1_0"),
    Some("q2_0"),
];

/// ggml's `GGML_TYPE_COUNT` for the vendored ggml.
pub const GGML_TYPE_COUNT: u32 = GGML_TYPE_NAMES.len() as u32;

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

    /// The GGUF/ggml numeric id of this type (ggml.h `enum ggml_type`).
    pub const fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// The type with GGUF/ggml numeric id `id`, if sail knows it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// ggml's name of any type id (also for types sail does not use), e.g. `q4_K`; ids ggml
    /// does not know are shown as `type#ID`. Never calls into ggml.
    pub fn name_of_id(id: u32) -> String {
        match GGML_TYPE_NAMES.get(id as usize) {
            Some(Some(n)) => (*n).to_string(),
            _ => format!("type#{id}"),
        }
    }

    /// ggml's name, e.g. `q4_K`.
    pub const fn name(self) -> &'static str {
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

    /// Values per block (ggml's `blck_size`).
    pub const fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q5_1 => QK_LEGACY,
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => QK_K,
        }
    }

    /// Bytes per block (ggml's `type_size`): the block structs of ggml-common.h.
    pub const fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            // d (f16) + 32 × i8
            GgmlType::Q8_0 => 2 + QK_LEGACY,
            // d (f16) + 16 bytes of nibbles
            GgmlType::Q4_0 => 2 + QK_LEGACY / 2,
            // d (f16) + 4 bytes of high bits + 16 bytes of nibbles
            GgmlType::Q5_0 => 2 + 4 + QK_LEGACY / 2,
            // d, m (f16) + 4 + 16
            GgmlType::Q5_1 => 2 + 2 + 4 + QK_LEGACY / 2,
            // d, dmin (f16) + 12 bytes of scales + 128 bytes of nibbles
            GgmlType::Q4_K => 2 + 2 + 12 + QK_K / 2,
            // d, dmin + 12 scales + 32 high bits + 128 nibbles
            GgmlType::Q5_K => 2 + 2 + 12 + QK_K / 8 + QK_K / 2,
            // 128 low nibbles + 64 high bits + 16 scales + d (f16)
            GgmlType::Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
        }
    }

    pub const fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Bytes of one row of `n_per_row` values, if the row divides into whole blocks (and the
    /// size fits a `usize`).
    pub fn row_bytes(self, n_per_row: usize) -> Option<usize> {
        let b = self.block_size();
        if !n_per_row.is_multiple_of(b) {
            return None;
        }
        (n_per_row / b).checked_mul(self.type_size())
    }

    /// Bytes of a tensor with ggml dims `ne` (ne[0] innermost), if ne[0] divides into blocks
    /// and nothing overflows.
    pub fn tensor_bytes(self, ne: &[u64]) -> Option<usize> {
        let n0 = usize::try_from(*ne.first()?).ok()?;
        let rows = ne[1..].iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        self.row_bytes(n0)?.checked_mul(usize::try_from(rows).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_names_agree_with_the_id_table() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
            assert_eq!(GgmlType::name_of_id(t.id()), t.name());
        }
        assert_eq!(GgmlType::name_of_id(1 << 31), "type#2147483648");
        assert_eq!(GgmlType::name_of_id(99), "type#99");
        assert_eq!(GgmlType::name_of_id(4), "type#4");
    }

    #[test]
    fn sizes_never_wrap() {
        assert_eq!(GgmlType::Q4_K.tensor_bytes(&[256, 2]), Some(288));
        assert_eq!(GgmlType::F32.tensor_bytes(&[u64::MAX, 2]), None);
        assert_eq!(GgmlType::F32.tensor_bytes(&[1 << 62, 1]), None);
        assert_eq!(GgmlType::F16.tensor_bytes(&[2, u64::MAX, 2]), None);
        assert_eq!(GgmlType::Q8_0.tensor_bytes(&[31]), None);
    }
}
