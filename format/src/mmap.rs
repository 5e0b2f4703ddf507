//! Read-only file mappings: the converter reads safetensors through them and the runtime
//! serves weights from them, so a model never has to fit in RAM twice.

use std::path::{Path, PathBuf};

/// A read-only memory map of a whole file.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps a regular file (anything else, a FIFO or a device, is refused without blocking:
    /// see [`crate::files::open_input`]).
    pub fn open(path: &Path) -> std::io::Result<MappedFile> {
        let file = crate::files::open_input(path)?;
        let len = file.metadata()?.len();
        // mmap of an empty file fails on Linux; an empty mapping is represented by None.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private to this process. Another process
            // truncating the file while it is mapped would make reads fault (SIGBUS); this is
            // the same contract every mmap-based model loader has (llama.cpp included) and is
            // documented for users: do not rewrite a model file while it is in use.
            Some(unsafe { memmap2::MmapOptions::new().map(&file)? })
        };
        Ok(MappedFile { path: path.to_path_buf(), map })
    }

    /// A read-only anonymous mapping holding a copy of `bytes`, named `path` in messages: the
    /// same reader then parses data that is not in a file (tests, fuzzing).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<MappedFile> {
        if bytes.is_empty() {
            return Ok(MappedFile { path: path.to_path_buf(), map: None });
        }
        let mut m = memmap2::MmapOptions::new().len(bytes.len()).map_anon()?;
        m.copy_from_slice(bytes);
        Ok(MappedFile { path: path.to_path_buf(), map: Some(m.make_read_only()?) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Tells the kernel a range will be read once, front to back (streaming conversion).
    pub fn advise_sequential(&self) {
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::Sequential);
        }
    }
}

impl MappedFile {
    /// Returns a range's pages to the kernel. The mapping stays valid: a later read faults
    /// the pages back in from the file.
    pub fn release_range(&self, offset: usize, len: usize) {
        if let Some(m) = &self.map {
            if len == 0 || offset >= m.len() {
                return;
            }
            let page = 4096;
            let start = offset / page * page;
            let end = (offset + len).min(m.len());
            // SAFETY: MADV_DONTNEED on a read-only, file-backed private mapping that is never
            // written only drops clean page-cache references; later reads see the file's
            // contents again, so no Rust reference observes changed data.
            let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
        }
    }
}
