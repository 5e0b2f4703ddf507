//! Streaming GGUF writer: the header (metadata and every tensor's shape, type and offset) is
//! fixed first, then tensor bytes follow one tensor at a time, so memory holds one tensor.

use super::value::{Value, ValueType};
use super::{GGUF_MAGIC, GGUF_VERSION};
use crate::{GgmlType, GGUF_DEFAULT_ALIGNMENT};
use std::io::{self, Write};

/// A tensor as it will appear in the file; `ne` is ggml order (ne[0] innermost).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub ty: GgmlType,
}

impl PlannedTensor {
    pub fn n_bytes(&self) -> usize {
        self.ty.tensor_bytes(&self.ne).expect("planned tensors have block-aligned rows")
    }
}

/// Writes one GGUF file to any `Write` in a single forward pass.
#[derive(Debug)]
pub struct GgufWriter<W: Write> {
    out: W,
    tensors: Vec<PlannedTensor>,
    next: usize,
    written: u64,
    /// Bytes of the current tensor written so far.
    in_tensor: Option<usize>,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_scalar(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.push(*x as u8),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(*x as u8),
        Value::String(s) => put_str(buf, s),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        _ => unreachable!("arrays are handled by put_value"),
    }
}

fn put_value(buf: &mut Vec<u8>, v: &Value) {
    fn arr<T>(buf: &mut Vec<u8>, ty: ValueType, items: &[T], f: impl Fn(&mut Vec<u8>, &T)) {
        buf.extend_from_slice(&(ty as u32).to_le_bytes());
        buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for it in items {
            f(buf, it);
        }
    }
    buf.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
    match v {
        Value::ArrU8(a) => arr(buf, ValueType::U8, a, |b, x| b.push(*x)),
        Value::ArrI32(a) => arr(buf, ValueType::I32, a, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Value::ArrU32(a) => arr(buf, ValueType::U32, a, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Value::ArrF32(a) => arr(buf, ValueType::F32, a, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Value::ArrString(a) => arr(buf, ValueType::String, a, |b, s| put_str(b, s)),
        Value::ArrOther(t, a) => arr(buf, *t, a, put_scalar),
        scalar => put_scalar(buf, scalar),
    }
}

fn pad_len(n: u64) -> u64 {
    let a = GGUF_DEFAULT_ALIGNMENT as u64;
    (a - n % a) % a
}

/// The header up to (not including) its alignment padding: magic, version, counts, the
/// metadata, then one info per tensor as (name, dims, type id, offset in the data section).
/// Shared by the checked writer and [`write_raw`], which differ only in where the infos come from.
fn header<'a>(kvs: &[(String, Value)], n_tensors: usize, infos: impl Iterator<Item = (&'a str, &'a [u64], u32, u64)>) -> Vec<u8> {
    let mut h = Vec::with_capacity(1 << 16);
    h.extend_from_slice(GGUF_MAGIC);
    h.extend_from_slice(&GGUF_VERSION.to_le_bytes());
    h.extend_from_slice(&(n_tensors as u64).to_le_bytes());
    h.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut h, k);
        put_value(&mut h, v);
    }
    for (name, ne, type_id, offset) in infos {
        put_str(&mut h, name);
        h.extend_from_slice(&(ne.len() as u32).to_le_bytes());
        for d in ne {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&type_id.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
    }
    h
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header for `kvs` and `tensors`; tensor data must then follow, in this order,
    /// through [`GgufWriter::write_tensor`].
    pub fn start(mut out: W, kvs: &[(String, Value)], tensors: Vec<PlannedTensor>) -> io::Result<Self> {
        let mut offset = 0u64;
        let infos = tensors.iter().map(|t| {
            let at = offset;
            let n = t.n_bytes() as u64;
            offset += n + pad_len(n);
            (t.name.as_str(), t.ne.as_slice(), t.ty.id(), at)
        });
        let mut h = header(kvs, tensors.len(), infos);
        h.resize(h.len() + pad_len(h.len() as u64) as usize, 0);
        out.write_all(&h)?;
        Ok(GgufWriter { out, tensors, next: 0, written: h.len() as u64, in_tensor: None })
    }

    /// Name of the tensor whose data is expected next.
    pub fn next_tensor(&self) -> Option<&PlannedTensor> {
        self.tensors.get(self.next)
    }

    /// Appends the next tensor's bytes (with alignment padding).
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.begin_tensor(name)?;
        self.write_data(data)?;
        self.end_tensor()
    }

    /// Starts the next tensor; its bytes follow in any number of [`Self::write_data`] calls.
    pub fn begin_tensor(&mut self, name: &str) -> io::Result<()> {
        let t = self
            .tensors
            .get(self.next)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("tensor {name}: no more tensors planned")))?;
        if t.name != name || self.in_tensor.is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("tensor {name} written where {} was planned", t.name)));
        }
        self.in_tensor = Some(0);
        Ok(())
    }

    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        let done = self.in_tensor.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write_data outside a tensor"))?;
        *done += data.len();
        self.out.write_all(data)
    }

    /// Finishes the current tensor, checking its size against the plan, and pads it.
    pub fn end_tensor(&mut self) -> io::Result<()> {
        let t = &self.tensors[self.next];
        let got = self.in_tensor.take().unwrap_or(0);
        if got != t.n_bytes() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tensor {}: {got} bytes written, {} planned", t.name, t.n_bytes()),
            ));
        }
        let pad = pad_len(got as u64);
        self.out.write_all(&[0u8; GGUF_DEFAULT_ALIGNMENT][..pad as usize])?;
        self.written += got as u64 + pad;
        self.next += 1;
        Ok(())
    }

    /// Checks every planned tensor was written, flushes, and returns the sink and file size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.next != self.tensors.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("only {} of {} tensors were written", self.next, self.tensors.len()),
            ));
        }
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// A tensor header written exactly as given (any type id, any offset), for tools and tests
/// that need files the checked writer would refuse to make.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub type_id: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

/// Writes a GGUF file with exactly these metadata, tensor headers and data section; the data
/// section starts at the next multiple of `alignment` after the header.
pub fn write_raw(mut out: impl Write, kvs: &[(String, Value)], tensors: &[RawTensor], data: &[u8], alignment: usize) -> io::Result<()> {
    let mut h = header(kvs, tensors.len(), tensors.iter().map(|t| (t.name.as_str(), t.ne.as_slice(), t.type_id, t.offset)));
    let a = alignment.max(1);
    h.resize(h.len().div_ceil(a) * a, 0);
    out.write_all(&h)?;
    out.write_all(data)?;
    out.flush()
}
