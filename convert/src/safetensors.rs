//! Memory-mapped safetensors input, one file or shards through `model.safetensors.index.json`.
//!
//! Parsed by hand (the format is a length, a JSON header and raw bytes) so that a corrupt
//! file is reported with its name and what is wrong with it, and so that tensor bytes are
//! borrowed from the mapping rather than copied.

use crate::error::ConvertError;
use sail_format::MappedFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Element types sail-convert reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    BF16,
    F16,
    F32,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::BF16 | Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }
}

/// Where one tensor lives.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub file: usize,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Absolute byte range in the file.
    pub start: usize,
    pub end: usize,
}

/// All tensors of a checkpoint, across shards.
#[derive(Debug)]
pub struct Checkpoint {
    pub files: Vec<MappedFile>,
    pub tensors: BTreeMap<String, TensorRef>,
}

fn corrupt(path: &Path, why: impl Into<String>) -> ConvertError {
    ConvertError::CorruptSafetensors { file: path.to_path_buf(), why: why.into() }
}

impl Checkpoint {
    /// Opens `model.safetensors`, or the shards named by `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Checkpoint, ConvertError> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let mut files: Vec<PathBuf> = Vec::new();
        let mut expected: Option<BTreeMap<String, String>> = None;
        if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| ConvertError::io(&index, e))?;
            let j: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ConvertError::BadJson { file: index.clone(), why: e.to_string() })?;
            let map = j
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ConvertError::BadJson { file: index.clone(), why: "no \"weight_map\" object".into() })?;
            let mut wm = BTreeMap::new();
            for (k, v) in map {
                let f = v
                    .as_str()
                    .ok_or_else(|| ConvertError::BadJson { file: index.clone(), why: format!("weight_map[{k:?}] is not a file name") })?;
                if f.contains('/') || f.contains('\\') || f == ".." {
                    return Err(ConvertError::BadJson { file: index.clone(), why: format!("shard name {f:?} is not a plain file name") });
                }
                wm.insert(k.clone(), f.to_string());
                let p = dir.join(f);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
            for f in &files {
                if !f.exists() {
                    return Err(ConvertError::MissingShard { file: f.clone(), index: index.clone() });
                }
            }
            expected = Some(wm);
        } else if single.is_file() {
            files.push(single);
        } else {
            return Err(ConvertError::NoWeights { dir: dir.to_path_buf() });
        }

        let mut ck = Checkpoint { files: Vec::new(), tensors: BTreeMap::new() };
        for (fi, path) in files.iter().enumerate() {
            let m = MappedFile::open(path).map_err(|e| ConvertError::io(path, e))?;
            for (name, t) in parse_header(path, m.bytes(), fi)? {
                if let Some(wm) = &expected {
                    let want = wm.get(&name).map(|s| dir.join(s));
                    if want.as_deref() != Some(path.as_path()) {
                        return Err(corrupt(path, format!("holds tensor {name}, which the index does not place in this shard")));
                    }
                }
                if ck.tensors.insert(name.clone(), t).is_some() {
                    return Err(corrupt(path, format!("tensor {name} appears in more than one shard")));
                }
            }
            ck.files.push(m);
        }
        if let Some(wm) = &expected {
            if let Some(name) = wm.keys().find(|k| !ck.tensors.contains_key(*k)) {
                return Err(corrupt(&dir.join(&wm[name]), format!("the index places tensor {name} here, but the file lacks it")));
            }
        }
        Ok(ck)
    }

    pub fn bytes(&self, t: &TensorRef) -> &[u8] {
        &self.files[t.file].bytes()[t.start..t.end]
    }

    pub fn path(&self, t: &TensorRef) -> &Path {
        self.files[t.file].path()
    }

    /// Decodes rows `[row0, row0 + rows)` of a tensor (rows of `n_per_row` values) into `out`
    /// as f32, returning the number of NaN and infinite values among them.
    pub fn rows_f32(&self, t: &TensorRef, n_per_row: usize, row0: usize, rows: usize, out: &mut Vec<f32>) -> (usize, usize) {
        let es = t.dtype.size();
        let b = &self.bytes(t)[row0 * n_per_row * es..(row0 + rows) * n_per_row * es];
        out.clear();
        match t.dtype {
            Dtype::F32 => out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            Dtype::BF16 => out.extend(b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())),
            Dtype::F16 => out.extend(b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())),
        }
        let nan = out.iter().filter(|v| v.is_nan()).count();
        let inf = out.iter().filter(|v| v.is_infinite()).count();
        (nan, inf)
    }

    /// Drops converted rows' pages from this process's resident set, so resident memory
    /// tracks the chunk in flight, not the bytes read so far.
    pub fn release_rows(&self, t: &TensorRef, n_per_row: usize, row0: usize, rows: usize) {
        let es = t.dtype.size();
        self.files[t.file].release_range(t.start + row0 * n_per_row * es, rows * n_per_row * es);
    }
}

fn parse_header(path: &Path, b: &[u8], fi: usize) -> Result<Vec<(String, TensorRef)>, ConvertError> {
    if b.len() < 8 {
        return Err(corrupt(path, format!("{} bytes, too short for a header", b.len())));
    }
    let n = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    if n > (b.len() - 8) as u64 || n > 100 << 20 {
        return Err(corrupt(path, format!("header length {n} exceeds the file ({} bytes)", b.len())));
    }
    let data_start = 8 + n as usize;
    let j: serde_json::Value =
        serde_json::from_slice(&b[8..data_start]).map_err(|e| corrupt(path, format!("header is not valid JSON: {e}")))?;
    let obj = j.as_object().ok_or_else(|| corrupt(path, "header is not a JSON object"))?;
    let data_len = b.len() - data_start;
    let mut out = Vec::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dt = v.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| corrupt(path, format!("tensor {name}: no dtype")))?;
        let dtype = match dt {
            "BF16" => Dtype::BF16,
            "F16" => Dtype::F16,
            "F32" => Dtype::F32,
            other => return Err(ConvertError::UnsupportedDtype { tensor: name.clone(), dtype: other.into(), file: path.to_path_buf() }),
        };
        let shape: Vec<u64> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect::<Option<Vec<_>>>())
            .ok_or_else(|| corrupt(path, format!("tensor {name}: bad shape")))?;
        let offs: Vec<u64> = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|x| x.as_u64()).collect::<Option<Vec<_>>>())
            .filter(|o| o.len() == 2)
            .ok_or_else(|| corrupt(path, format!("tensor {name}: bad data_offsets")))?;
        let (s, e) = (offs[0], offs[1]);
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let want = numel.and_then(|n| n.checked_mul(dtype.size() as u64));
        if e < s || e > data_len as u64 || want != Some(e - s) {
            return Err(corrupt(
                path,
                format!("tensor {name}: data [{s}, {e}) does not hold shape {shape:?} {dt} within {data_len} data bytes"),
            ));
        }
        out.push((name.clone(), TensorRef { file: fi, dtype, shape, start: data_start + s as usize, end: data_start + e as usize }));
    }
    Ok(out)
}
