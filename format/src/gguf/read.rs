//! GGUF reader over a byte slice (normally a memory map): metadata is parsed eagerly and
//! bounds-checked, tensor data is handed out as sub-slices without copying.

use super::value::{Value, ValueType};
use super::GGUF_MAGIC;
use crate::{GgmlType, MappedFile, GGUF_DEFAULT_ALIGNMENT};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a GGUF file (magic {magic:?})")]
    BadMagic { path: PathBuf, magic: Vec<u8> },
    #[error("{path}: GGUF version {version} is not supported (2 and 3 are)")]
    BadVersion { path: PathBuf, version: u32 },
    #[error("{path}: truncated or corrupt GGUF ({what} at byte {offset})")]
    Corrupt { path: PathBuf, what: String, offset: usize },
    #[error("{path}: tensor {tensor} has ggml type {ty}, which sail cannot use")]
    UnsupportedType { path: PathBuf, tensor: String, ty: String },
    #[error("{path}: tensor {tensor} data [{start}, {end}) lies outside the file ({len} bytes)")]
    TensorOutOfBounds { path: PathBuf, tensor: String, start: usize, end: usize, len: usize },
}

/// One tensor's description from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: ne[0] is the innermost (contiguous) dimension.
    pub ne: Vec<u64>,
    pub type_id: u32,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn ty(&self) -> Option<GgmlType> {
        GgmlType::from_id(self.type_id)
    }
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
}

/// A parsed GGUF file backed by a read-only mapping.
#[derive(Debug)]
pub struct GgufFile {
    map: MappedFile,
    pub version: u32,
    pub kvs: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub data_offset: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: impl Into<String>) -> GgufError {
        GgufError::Corrupt { path: self.path.to_path_buf(), what: what.into(), offset: self.pos }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err(what))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn count(&mut self, what: &str) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        // Every element takes at least one byte, so a count beyond the file is corrupt; this
        // keeps a hostile header from making us allocate terabytes.
        if n > (self.b.len() - self.pos) as u64 {
            return Err(self.err(format!("{what} count {n}")));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.count(what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    fn scalar(&mut self, t: ValueType, what: &str) -> Result<Value, GgufError> {
        Ok(match t {
            ValueType::U8 => Value::U8(self.take(1, what)?[0]),
            ValueType::I8 => Value::I8(self.take(1, what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2"))),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.take(2, what)?.try_into().expect("2"))),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(self.u32(what)? as i32),
            ValueType::F32 => Value::F32(f32::from_bits(self.u32(what)?)),
            ValueType::Bool => Value::Bool(self.take(1, what)?[0] != 0),
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(self.u64(what)? as i64),
            ValueType::F64 => Value::F64(f64::from_bits(self.u64(what)?)),
            ValueType::Array => return Err(self.err(format!("{what}: nested array"))),
        })
    }
    fn value(&mut self, what: &str) -> Result<Value, GgufError> {
        let tid = self.u32(what)?;
        let t = ValueType::from_id(tid).ok_or_else(|| self.err(format!("{what}: value type {tid}")))?;
        if t != ValueType::Array {
            return self.scalar(t, what);
        }
        let eid = self.u32(what)?;
        let et = ValueType::from_id(eid).ok_or_else(|| self.err(format!("{what}: element type {eid}")))?;
        let n = self.count(what)?;
        let mut items = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            items.push(self.scalar(et, what)?);
        }
        Ok(match et {
            ValueType::U8 => Value::ArrU8(items.iter().map(|v| v.as_i64().unwrap_or(0) as u8).collect()),
            ValueType::I32 => Value::ArrI32(items.iter().map(|v| v.as_i64().unwrap_or(0) as i32).collect()),
            ValueType::U32 => Value::ArrU32(items.iter().map(|v| v.as_i64().unwrap_or(0) as u32).collect()),
            ValueType::F32 => Value::ArrF32(items.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect()),
            ValueType::String => {
                Value::ArrString(items.into_iter().map(|v| if let Value::String(s) = v { s } else { String::new() }).collect())
            }
            _ => Value::ArrOther(et, items),
        })
    }
}

impl GgufFile {
    /// Maps and parses `path`. Tensor extents are checked against the file size.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let map = MappedFile::open(path).map_err(|source| GgufError::Io { path: path.to_path_buf(), source })?;
        let (version, kvs, tensors, data_offset) = Self::parse(map.bytes(), path)?;
        Ok(GgufFile { map, version, kvs, tensors, data_offset })
    }

    #[allow(clippy::type_complexity)]
    fn parse(b: &[u8], path: &Path) -> Result<(u32, Vec<(String, Value)>, Vec<TensorInfo>, usize), GgufError> {
        let mut c = Cursor { b, pos: 0, path };
        let magic =
            c.take(4, "magic").map_err(|_| GgufError::BadMagic { path: path.to_path_buf(), magic: b[..b.len().min(4)].to_vec() })?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic { path: path.to_path_buf(), magic: magic.to_vec() });
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::BadVersion { path: path.to_path_buf(), version });
        }
        let n_tensors = c.count("tensor")?;
        let n_kv = c.count("metadata")?;
        let mut kvs = Vec::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = c.string(&format!("key #{i}"))?;
            let v = c.value(&key)?;
            kvs.push((key, v));
        }
        let alignment = kvs
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_i64())
            .map(|a| a as usize)
            .unwrap_or(GGUF_DEFAULT_ALIGNMENT);
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(c.err(format!("general.alignment {alignment}")));
        }
        let mut raw = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor #{i} name"))?;
            let nd = c.u32(&name)? as usize;
            if nd == 0 || nd > 4 {
                return Err(c.err(format!("tensor {name}: {nd} dimensions")));
            }
            let mut ne = Vec::with_capacity(nd);
            for _ in 0..nd {
                ne.push(c.u64(&name)?);
            }
            let ty = c.u32(&name)?;
            let off = c.u64(&name)?;
            raw.push((name, ne, ty, off));
        }
        let data_offset = c.pos.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, ne, type_id, off) in raw {
            let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnsupportedType {
                path: path.to_path_buf(),
                tensor: name.clone(),
                ty: GgmlType::name_of_id(type_id),
            })?;
            let n_bytes = ne
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .and_then(|_| ty.tensor_bytes(&ne))
                .ok_or_else(|| c.err(format!("tensor {name}: shape {ne:?} does not fit type {ty}")))?;
            let start = data_offset.saturating_add(off as usize);
            let end = start.saturating_add(n_bytes);
            if end > b.len() {
                return Err(GgufError::TensorOutOfBounds { path: path.to_path_buf(), tensor: name, start, end, len: b.len() });
            }
            tensors.push(TensorInfo { name, ne, type_id, offset: start, n_bytes });
        }
        Ok((version, kvs, tensors, data_offset))
    }

    pub fn path(&self) -> &Path {
        self.map.path()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
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
