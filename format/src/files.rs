//! Opening files that came from somewhere else, and choosing where results may go.
//!
//! A path a user (or a model file) names may be anything the file system holds: a FIFO, whose
//! `open()` for reading blocks until some writer appears (a hang); a device, which reads
//! forever; a directory. So inputs are opened without blocking, checked to be regular files on
//! the open descriptor (no window for the path to change between the check and the read), and
//! only then read or mapped.
//!
//! Outputs are written under a temporary name and renamed into place, which is what keeps a
//! failed write from leaving half a file — and what would replace `/dev/null` with a regular
//! file, or an input checkpoint with the output, if the path were not checked first.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What a non-regular file is, for messages.
pub fn kind_of(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn not_regular(m: &Metadata) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{}, not a regular file", kind_of(m)))
}

/// Opens `path` for reading if it is a regular file. The open itself never blocks (a FIFO is
/// refused instead of waited on); the type is checked on the open descriptor.
pub fn open_input(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO with no writer returns at once instead of blocking. On a
        // regular file the flag changes nothing, so the descriptor is used as it is.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let f = opts.open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(not_regular(&m));
    }
    Ok(f)
}

/// Reads a whole regular file of at most `max_bytes` (checked before reading, so a huge file
/// costs nothing).
pub fn read_input(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let f = open_input(path)?;
    let len = f.metadata()?.len();
    if len > max_bytes {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{len} bytes, more than the {max_bytes} accepted")));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len as usize).map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, format!("cannot hold {len} bytes")))?;
    // `take`: a file that grows while being read cannot push the buffer past the limit.
    f.take(max_bytes.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max_bytes {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("more than the {max_bytes} bytes accepted")));
    }
    Ok(buf)
}

/// Why an output path was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: is {kind}; outputs are written as regular files and never replace one that is not")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: is the input {input}; choose another output name")]
    IsInput { path: PathBuf, input: PathBuf },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

/// The identity of an existing file: (device, inode) where the platform has them.
fn identity(m: &Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// Checks that `path` may receive an output: if something exists there it must be a regular
/// file, and not one of `inputs` (the same file by device and inode, so a hard link or another
/// spelling of the path is caught too; by canonical path where inodes are unknown).
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<(), OutputError> {
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(OutputError::Io { path: path.to_path_buf(), error }),
    };
    if !m.is_file() {
        return Err(OutputError::NotRegular { path: path.to_path_buf(), kind: kind_of(&m) });
    }
    let canonical = path.canonicalize().ok();
    for input in inputs {
        let Ok(im) = std::fs::metadata(input) else { continue };
        let same = match (identity(&m), identity(&im)) {
            (Some(a), Some(b)) => a == b,
            _ => canonical.is_some() && canonical == input.canonicalize().ok(),
        };
        if same {
            return Err(OutputError::IsInput { path: path.to_path_buf(), input: input.to_path_buf() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sail-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn inputs_must_be_regular_files() {
        let d = dir("in");
        let f = d.join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_input(&f, 5).unwrap(), b"hello");
        assert!(read_input(&f, 4).unwrap_err().to_string().contains("more than the 4"));
        let e = open_input(&d).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let e = open_input(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = dir("fifo");
        let p = d.join("pipe");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_input(&p).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(matches!(check_output(&p, &[]), Err(OutputError::NotRegular { kind: "a FIFO", .. })));
    }

    #[test]
    fn outputs_never_replace_devices_or_inputs() {
        let d = dir("out");
        assert!(check_output(&d.join("new.gguf"), &[]).is_ok());
        assert!(matches!(check_output(Path::new("/dev/null"), &[]), Err(OutputError::NotRegular { .. })));
        assert!(matches!(check_output(&d, &[]), Err(OutputError::NotRegular { kind: "a directory", .. })));
        let input = d.join("in.safetensors");
        std::fs::write(&input, b"x").unwrap();
        let other = d.join("old.gguf");
        std::fs::write(&other, b"x").unwrap();
        assert!(check_output(&other, &[&input]).is_ok());
        assert!(matches!(check_output(&input, &[&input]), Err(OutputError::IsInput { .. })));
        // another spelling of the same file
        let dotted = d.join(".").join("in.safetensors");
        assert!(matches!(check_output(&dotted, &[&input]), Err(OutputError::IsInput { .. })));
        #[cfg(unix)]
        {
            let link = d.join("hard.gguf");
            std::fs::hard_link(&input, &link).unwrap();
            assert!(matches!(check_output(&link, &[&input]), Err(OutputError::IsInput { .. })));
        }
    }
}
