//! safetensors files exactly as the `safetensors` library (and so `gen_ckpt.py`) lays them out,
//! written as a stream.
//!
//! Byte identity needs the library's conventions: tensors ordered by dtype and then name, the
//! header as compact JSON with `__metadata__` first, padded with spaces to a multiple of 8.
//! Full-size checkpoints are tens of gigabytes, so data never sits in memory as a whole: one
//! thread fills fixed-size batches of a tensor (in parallel, see `weights::fill`) while a
//! writer thread writes and hashes the previous batch; the sha256 the summary reports then
//! costs no second read.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use serde_json::{json, Map, Value};

use crate::pyjson::{self, Style};
use crate::weights::Dtype;
use crate::{Error, Result};

/// One tensor of a file: its name, shape, and where its values come from.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSource {
    pub name: String,
    pub shape: Vec<usize>,
    /// Name whose stream and init rule give the values (the tensor's own name, or
    /// `embed_tokens` for a copied `lm_head`).
    pub source: String,
}

impl TensorSource {
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// The header (8-byte length included) and each tensor's `[begin, end)` data offsets, in file
/// order. `tensors` must all have the same dtype.
pub fn header(tensors: &[(String, Vec<usize>)], dtype: Dtype) -> (Vec<u8>, Vec<(String, u64, u64)>) {
    let mut order: Vec<&(String, Vec<usize>)> = tensors.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hdr = Map::new();
    hdr.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0u64;
    let mut layout = Vec::with_capacity(order.len());
    for (name, shape) in order {
        let nb = shape.iter().map(|&d| d as u64).product::<u64>() * dtype.size() as u64;
        hdr.insert(name.clone(), json!({"dtype": dtype.st_name(), "shape": shape, "data_offsets": [off, off + nb]}));
        layout.push((name.clone(), off, off + nb));
        off += nb;
    }
    let mut js = pyjson::dumps(&Value::Object(hdr), Style::compact()).into_bytes();
    js.resize(js.len().div_ceil(8) * 8, b' ');
    let mut out = (js.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&js);
    (out, layout)
}

/// Throttled progress lines on stderr.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub fn new(enabled: bool, total_bytes: u64) -> Self {
        let now = Instant::now();
        Progress { enabled, total: total_bytes, done: 0, started: now, last: now }
    }

    fn add(&mut self, bytes: u64, file: &str) {
        self.done += bytes;
        if self.enabled && (self.last.elapsed().as_secs_f64() >= 2.0 || self.done == self.total) {
            self.last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "sail-gen: {file}: {:.2}/{:.2} GB ({:.0}%), {:.1} s, {:.2} GB/s",
                self.done as f64 / 1e9,
                self.total as f64 / 1e9,
                100.0 * self.done as f64 / self.total.max(1) as f64,
                secs,
                self.done as f64 / 1e9 / secs.max(1e-9),
            );
        }
    }
}

/// Elements generated per batch handed to the writer thread.
const BATCH: u64 = 8 << 20;

/// Writes one safetensors file with `seed`'s values for `tensors` and returns its sha256.
pub fn write(path: &Path, tensors: &[TensorSource], dtype: Dtype, seed: i64, progress: &mut Progress) -> Result<String> {
    let entries: Vec<(String, Vec<usize>)> = tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    let (head, layout) = header(&entries, dtype);
    let by_name: std::collections::HashMap<&str, &TensorSource> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut file = File::create(path).map_err(|e| Error::write(path, e))?;
    let elem = dtype.size() as u64;

    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<String> {
            let mut h = Sha256::new();
            for buf in rx {
                file.write_all(&buf)?;
                h.update(&buf);
                let _ = back_tx.send(buf);
            }
            file.flush()?;
            Ok(crate::hex(&h.finalize()))
        });
        let mut produce = || -> bool {
            if tx.send(head.clone()).is_err() {
                return false;
            }
            for (name, begin, end) in &layout {
                let t = by_name[name.as_str()];
                let init = crate::weights::init_rule(&t.source, &t.shape);
                let n = (end - begin) / elem;
                let mut start = 0u64;
                while start < n {
                    let len = BATCH.min(n - start);
                    let mut buf = back_rx.try_recv().unwrap_or_default();
                    buf.clear();
                    buf.resize((len * elem) as usize, 0);
                    crate::weights::fill(&t.source, init, seed, dtype, start, &mut buf);
                    if tx.send(buf).is_err() {
                        return false; // the writer failed; its error is reported below
                    }
                    progress.add(len * elem, &file_name);
                    start += len;
                }
            }
            true
        };
        produce();
        drop(tx);
        writer.join().expect("writer thread panicked").map_err(|e| Error::write(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_like_safetensors() {
        let (h, layout) = header(&[("b".into(), vec![2, 3]), ("a".into(), vec![1])], Dtype::Bfloat16);
        let js = br#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[2,14]}}"#;
        let padded = js.len().div_ceil(8) * 8;
        assert_eq!(&h[..8], &(padded as u64).to_le_bytes());
        assert_eq!(&h[8..8 + js.len()], js);
        assert!(h[8 + js.len()..].iter().all(|&b| b == b' '));
        assert_eq!(layout, vec![("a".to_string(), 0, 2), ("b".to_string(), 2, 14)]);
    }
}
