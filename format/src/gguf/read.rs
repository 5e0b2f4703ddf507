//! GGUF reader over a byte slice (normally a memory map): metadata is parsed eagerly and
//! bounds-checked, tensor data is handed out as sub-slices without copying.
//!
//! Every length, count and offset comes from the file, so none of them is trusted: counts are
//! checked against the bytes left before anything is reserved, the memory the parsed metadata
//! takes is budgeted (a file of a few hundred MB must not cost tens of GB), and every size is
//! computed with checked arithmetic. Names and keys are indexed, so later look-ups cost O(1)
//! whatever the file claims. Judging whether the file fits what llama.cpp or the vision graph
//! assume is [`crate::validate`]'s job; this reader only guarantees a well-formed container.

use super::value::{Value, ValueType};
use super::GGUF_MAGIC;
use crate::{GgmlType, MappedFile, GGUF_DEFAULT_ALIGNMENT};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The most memory the parsed metadata of one file may take (strings, arrays, keys). A real
/// model's tokenizer metadata takes a few tens of MB.
pub const MAX_METADATA_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a GGUF file")]
    BadMagic { path: PathBuf },
    #[error("{path}: GGUF version {version} is not supported (2 and 3 are)")]
    BadVersion { path: PathBuf, version: u32 },
    #[error("{path}: truncated or corrupt GGUF ({what} at byte {offset})")]
    Corrupt { path: PathBuf, what: String, offset: usize },
    #[error("{path}: tensor {tensor} has ggml type {ty}, which sail cannot use")]
    UnsupportedType { path: PathBuf, tensor: String, ty: String },
    #[error("{path}: tensor {tensor} data [{start}, {end}) lies outside the file ({len} bytes)")]
    TensorOutOfBounds { path: PathBuf, tensor: String, start: u64, end: u64, len: usize },
    #[error("{path}: the metadata would take more than {max} bytes of memory")]
    MetadataTooLarge { path: PathBuf, max: usize },
}

/// One tensor's description from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: ne[0] is the innermost (contiguous) dimension. Each is ≤ i64::MAX.
    pub ne: Vec<u64>,
    pub type_id: u32,
    /// Offset of the data from the start of the data section, as the header states it.
    pub rel_offset: u64,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn ty(&self) -> Option<GgmlType> {
        GgmlType::from_id(self.type_id)
    }
    /// Number of values (saturating; the reader has checked the byte size fits).
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX)
    }
}

/// A parsed GGUF file backed by a read-only mapping.
#[derive(Debug)]
pub struct GgufFile {
    map: MappedFile,
    pub version: u32,
    pub kvs: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts (aligned to `alignment`).
    pub data_offset: usize,
    /// `general.alignment`, or GGUF's default.
    pub alignment: usize,
    /// First occurrence of each key / tensor name.
    kv_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Bytes of memory the parsed metadata may still take.
    budget: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: impl Into<String>) -> GgufError {
        GgufError::Corrupt { path: self.path.to_path_buf(), what: what.into(), offset: self.pos }
    }
    fn too_large(&self) -> GgufError {
        GgufError::MetadataTooLarge { path: self.path.to_path_buf(), max: MAX_METADATA_BYTES }
    }
    fn spend(&mut self, bytes: usize) -> Result<(), GgufError> {
        self.budget =
            self.budget.checked_sub(bytes).ok_or(GgufError::MetadataTooLarge { path: self.path.to_path_buf(), max: MAX_METADATA_BYTES })?;
        Ok(())
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err(what))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// A count of items of at least `min_item_bytes` each: a count the remaining bytes cannot
    /// hold is corrupt, so no count can make us reserve more than the file justifies.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        let left = (self.b.len() - self.pos) as u64;
        if n.checked_mul(min_item_bytes.max(1) as u64).is_none_or(|need| need > left) {
            return Err(self.err(format!("{what} count {n}")));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.count(what, 1)?;
        self.spend(n.saturating_add(std::mem::size_of::<String>()))?;
        let s = self.take(n, what)?;
        let text = std::str::from_utf8(s).map_err(|_| self.err(format!("{what} is not UTF-8")))?;
        let mut owned = String::new();
        owned.try_reserve_exact(n).map_err(|_| self.too_large())?;
        owned.push_str(text);
        Ok(owned)
    }
    fn scalar(&mut self, t: ValueType, what: &str) -> Result<Value, GgufError> {
        Ok(match t {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(self.u32(what)? as i32),
            ValueType::F32 => Value::F32(f32::from_bits(self.u32(what)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(what)?[0] != 0),
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(self.u64(what)? as i64),
            ValueType::F64 => Value::F64(f64::from_bits(self.u64(what)?)),
            ValueType::Array => return Err(self.err(format!("{what}: nested array"))),
        })
    }
    /// `n` items read by `f`, in a vector that grows as they arrive (never reserved up front
    /// from the count) and is charged `item_bytes` each against the budget.
    fn items<T>(&mut self, n: usize, item_bytes: usize, mut f: impl FnMut(&mut Self) -> Result<T, GgufError>) -> Result<Vec<T>, GgufError> {
        self.spend(n.saturating_mul(item_bytes))?;
        // grown fallibly: the budget bounds the total, but memory may run out before it
        let mut v = Vec::new();
        for _ in 0..n {
            if v.len() == v.capacity() {
                v.try_reserve(v.len().clamp(16, 1 << 20)).map_err(|_| self.too_large())?;
            }
            v.push(f(self)?);
        }
        Ok(v)
    }
    fn value(&mut self, what: &str) -> Result<Value, GgufError> {
        let tid = self.u32(what)?;
        let t = ValueType::from_id(tid).ok_or_else(|| self.err(format!("{what}: value type {tid}")))?;
        if t != ValueType::Array {
            return self.scalar(t, what);
        }
        let eid = self.u32(what)?;
        let et = ValueType::from_id(eid).ok_or_else(|| self.err(format!("{what}: element type {eid}")))?;
        let size_on_disk = match et {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => return Err(self.err(format!("{what}: nested array"))),
        };
        let n = self.count(what, size_on_disk)?;
        Ok(match et {
            ValueType::U8 => Value::ArrU8(self.items(n, 1, |c| Ok(c.array::<1>(what)?[0]))?),
            ValueType::I32 => Value::ArrI32(self.items(n, 4, |c| Ok(c.u32(what)? as i32))?),
            ValueType::U32 => Value::ArrU32(self.items(n, 4, |c| c.u32(what))?),
            ValueType::F32 => Value::ArrF32(self.items(n, 4, |c| Ok(f32::from_bits(c.u32(what)?)))?),
            // the strings charge their own bytes
            ValueType::String => Value::ArrString(self.items(n, 0, |c| c.string(what))?),
            _ => Value::ArrOther(et, self.items(n, std::mem::size_of::<Value>(), |c| c.scalar(et, what))?),
        })
    }
}

/// What the header says, before tensor extents are resolved.
struct Parsed {
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    data_offset: usize,
    alignment: usize,
}

impl GgufFile {
    /// Maps and parses `path` (a regular file; anything else is refused without blocking).
    /// Tensor extents are checked against the file size.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let map = MappedFile::open(path).map_err(|error| GgufError::Io { path: path.to_path_buf(), error })?;
        Self::from_map(map)
    }

    /// Parses a copy of `bytes` as if it were the file `name` (tests, fuzzing).
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<GgufFile, GgufError> {
        let map = MappedFile::from_bytes(name, bytes).map_err(|error| GgufError::Io { path: name.to_path_buf(), error })?;
        Self::from_map(map)
    }

    fn from_map(map: MappedFile) -> Result<GgufFile, GgufError> {
        let path = map.path().to_path_buf();
        let p = Self::parse(map.bytes(), &path)?;
        let mut kv_index = HashMap::with_capacity(p.kvs.len());
        for (i, (k, _)) in p.kvs.iter().enumerate() {
            kv_index.entry(k.clone()).or_insert(i);
        }
        let mut tensor_index = HashMap::with_capacity(p.tensors.len());
        for (i, t) in p.tensors.iter().enumerate() {
            tensor_index.entry(t.name.clone()).or_insert(i);
        }
        Ok(GgufFile {
            map,
            version: p.version,
            kvs: p.kvs,
            tensors: p.tensors,
            data_offset: p.data_offset,
            alignment: p.alignment,
            kv_index,
            tensor_index,
        })
    }

    fn parse(b: &[u8], path: &Path) -> Result<Parsed, GgufError> {
        let mut c = Cursor { b, pos: 0, path, budget: MAX_METADATA_BYTES };
        if b.len() < 4 || &b[..4] != GGUF_MAGIC {
            return Err(GgufError::BadMagic { path: path.to_path_buf() });
        }
        c.pos = 4;
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::BadVersion { path: path.to_path_buf(), version });
        }
        // A tensor description takes at least 8 (name length) + 4 (dims) + 8 + 4 + 8 bytes,
        // a key/value pair at least 8 (key length) + 4 (type) + 1.
        let n_tensors = c.count("tensor", 32)?;
        let n_kv = c.count("metadata", 13)?;
        let mut kvs = Vec::with_capacity(n_kv.min(1 << 12));
        for i in 0..n_kv {
            let key = c.string(&format!("key #{i}"))?;
            let v = c.value(&key)?;
            kvs.push((key, v));
        }
        // gguf.cpp: the key must be a u32 and a power of two, or the file is refused.
        let alignment = match kvs.iter().find(|(k, _)| k == crate::keys::GENERAL_ALIGNMENT).map(|(_, v)| v) {
            None => GGUF_DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => *a as usize,
            Some(Value::U32(a)) => return Err(c.err(format!("general.alignment {a} is not a power of two"))),
            Some(v) => return Err(c.err(format!("general.alignment has type {:?}, not u32", v.value_type()))),
        };
        let mut raw = Vec::with_capacity(n_tensors.min(1 << 14));
        c.spend(n_tensors.saturating_mul(std::mem::size_of::<TensorInfo>() + 32))?;
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor #{i} name"))?;
            let nd = c.u32(&name)? as usize;
            if nd == 0 || nd > 4 {
                return Err(c.err(format!("tensor {name}: {nd} dimensions")));
            }
            let mut ne = Vec::with_capacity(nd);
            for _ in 0..nd {
                let d = c.u64(&name)?;
                // ggml keeps dimensions as int64_t
                if d > i64::MAX as u64 {
                    return Err(c.err(format!("tensor {name}: dimension {d}")));
                }
                ne.push(d);
            }
            let ty = c.u32(&name)?;
            let off = c.u64(&name)?;
            raw.push((name, ne, ty, off));
        }
        let data_offset = c.pos.div_ceil(alignment).checked_mul(alignment).ok_or_else(|| c.err("data section offset"))?;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, ne, type_id, rel_offset) in raw {
            let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnsupportedType {
                path: path.to_path_buf(),
                tensor: name.clone(),
                ty: GgmlType::name_of_id(type_id),
            })?;
            let n_bytes = ty.tensor_bytes(&ne).ok_or_else(|| c.err(format!("tensor {name}: shape {ne:?} does not fit type {ty}")))?;
            let start = (data_offset as u64).checked_add(rel_offset);
            let end = start.and_then(|s| s.checked_add(n_bytes as u64));
            match (start, end) {
                (Some(s), Some(e)) if e <= b.len() as u64 => {
                    tensors.push(TensorInfo { name, ne, type_id, rel_offset, offset: s as usize, n_bytes })
                }
                _ => {
                    return Err(GgufError::TensorOutOfBounds {
                        path: path.to_path_buf(),
                        tensor: name,
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        len: b.len(),
                    })
                }
            }
        }
        Ok(Parsed { version, kvs, tensors, data_offset, alignment })
    }

    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv_index.get(key).map(|&i| &self.kvs[i].1)
    }

    /// The first tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Keys that appear more than once (gguf.cpp refuses such files).
    pub fn duplicate_keys(&self) -> Vec<&str> {
        self.kvs.iter().enumerate().filter(|(i, (k, _))| self.kv_index.get(k) != Some(i)).map(|(_, (k, _))| k.as_str()).collect()
    }

    /// Tensor names that appear more than once.
    pub fn duplicate_tensors(&self) -> Vec<&str> {
        self.tensors.iter().enumerate().filter(|(i, t)| self.tensor_index.get(&t.name) != Some(i)).map(|(_, t)| t.name.as_str()).collect()
    }

    /// The bytes of a tensor, straight from the mapping.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        &self.map.bytes()[t.offset..t.offset + t.n_bytes]
    }

    /// The whole mapped file (for handing weights to ggml without a copy).
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    pub fn file_size(&self) -> usize {
        self.map.bytes().len()
    }
}
