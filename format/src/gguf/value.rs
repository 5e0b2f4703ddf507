//! Typed GGUF metadata values.

/// GGUF value type ids (gguf.h `enum gguf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }
}

/// One metadata value. Arrays are homogeneous, as in GGUF.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    ArrU8(Vec<u8>),
    ArrI32(Vec<i32>),
    ArrU32(Vec<u32>),
    ArrF32(Vec<f32>),
    ArrString(Vec<String>),
    /// Any other array, kept as (element type, raw element values) so a read file can be
    /// described without loss.
    ArrOther(ValueType, Vec<Value>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            _ => ValueType::Array,
        }
    }

    /// Integer value of any integer type, widened.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            Value::U8(v) => v as i64,
            Value::I8(v) => v as i64,
            Value::U16(v) => v as i64,
            Value::I16(v) => v as i64,
            Value::U32(v) => v as i64,
            Value::I32(v) => v as i64,
            Value::U64(v) => i64::try_from(v).ok()?,
            Value::I64(v) => v,
            _ => return None,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_f32_array(&self) -> Option<Vec<f32>> {
        match self {
            Value::ArrF32(v) => Some(v.clone()),
            Value::ArrOther(_, v) => v.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
            _ => None,
        }
    }

    /// Number of elements if this is an array.
    pub fn array_len(&self) -> Option<usize> {
        Some(match self {
            Value::ArrU8(v) => v.len(),
            Value::ArrI32(v) => v.len(),
            Value::ArrU32(v) => v.len(),
            Value::ArrF32(v) => v.len(),
            Value::ArrString(v) => v.len(),
            Value::ArrOther(_, v) => v.len(),
            _ => return None,
        })
    }

    /// A short human-readable rendering (arrays summarised), for `sail info`.
    pub fn summary(&self) -> String {
        match self {
            Value::String(s) if s.chars().count() > 80 => {
                format!("{:?}…", s.chars().take(80).collect::<String>())
            }
            Value::String(s) => format!("{s:?}"),
            Value::F32(v) => format!("{v}"),
            Value::F64(v) => format!("{v}"),
            Value::Bool(v) => format!("{v}"),
            Value::ArrF32(v) if v.len() <= 8 => format!("{v:?}"),
            Value::ArrI32(v) if v.len() <= 8 => format!("{v:?}"),
            Value::ArrU32(v) if v.len() <= 8 => format!("{v:?}"),
            v if v.array_len().is_some() => format!("[{} items]", v.array_len().unwrap_or(0)),
            v => v.as_i64().map(|i| i.to_string()).unwrap_or_default(),
        }
    }
}
