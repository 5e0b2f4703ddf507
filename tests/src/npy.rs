//! Minimal `.npy` (format 1.0/2.0) reading and writing for little-endian f32 and i64 arrays.

use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// An n-dimensional f32 array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub fn read_f32(path: &Path) -> Result<Array> {
    let b = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        bail!("{}: not a .npy file", path.display());
    }
    let (hlen, hstart) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&b[hstart..hstart + hlen])?;
    if !header.contains("'descr': '<f4'") {
        bail!("{}: expected little-endian f32, header {header}", path.display());
    }
    if header.contains("'fortran_order': True") {
        bail!("{}: Fortran order is not supported", path.display());
    }
    let s = header.find("'shape': (").ok_or_else(|| anyhow!("no shape in {header}"))? + 10;
    let e = s + header[s..].find(')').ok_or_else(|| anyhow!("bad shape in {header}"))?;
    let shape: Vec<usize> =
        header[s..e].split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| x.parse()).collect::<Result<_, _>>()?;
    let data: Vec<f32> = b[hstart + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if data.len() != shape.iter().product::<usize>() {
        bail!("{}: {} values for shape {shape:?}", path.display(), data.len());
    }
    Ok(Array { shape, data })
}
