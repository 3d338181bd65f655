//! Memory mapped from files: cache entries read without a copy.

/// A file mapped read-only into memory, all its pages populated at once:
/// reading a cache entry this way costs no copy and no page fault per
/// page, where a read into a fresh buffer costs both.
#[derive(Debug)]
pub struct MappedFile {
    addr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

impl MappedFile {
    /// Maps `file` whole; `None` for an empty file, which has nothing to
    /// map.
    pub fn new(file: &std::fs::File) -> std::io::Result<Option<Self>> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap};
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        let Some(size) = std::num::NonZeroUsize::new(len) else {
            return Ok(None);
        };
        // SAFETY: a fresh private read-only mapping at an address the
        // kernel picks: it aliases no Rust object. Its bytes can change
        // under us only if the file is written in place, which the plugin
        // cache never does (entries are replaced by rename), and readers
        // check a digest over them anyway.
        let addr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
                file,
                0,
            )
        }?;
        Ok(Some(MappedFile { addr, len }))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as
        // `self`, which the returned slice borrows.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this address and
        // length, and no slice of it outlives `self`.
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.addr, self.len) } {
            tracing::debug!("munmap: {e}");
        }
    }
}
