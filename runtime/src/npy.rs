//! `.npy` output for `--embeddings-out` / `--logits-out` (little-endian f32, C order).

use std::io::Write;
use std::path::Path;

/// Writes `data` with `shape` as a version-1.0 `.npy` file, via a temporary name. Something
/// at `path` that is not a regular file (`/dev/null`, a FIFO, a folder) is refused rather than
/// replaced by the rename.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(data.len()) {
        return Err(invalid(format!("shape {shape:?} does not hold {} values", data.len())));
    }
    sail_format::files::check_output(path, &[]).map_err(|e| invalid(e.to_string()))?;
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let tmp = path.with_file_name(format!(".{}.partial", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let res = (|| {
        f.write_all(b"\x93NUMPY\x01\x00")?;
        f.write_all(&(header.len() as u16).to_le_bytes())?;
        f.write_all(header.as_bytes())?;
        for v in data {
            f.write_all(&v.to_le_bytes())?;
        }
        f.flush()
    })();
    drop(f);
    match res.and_then(|_| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
