//! Positioned reads of the image bytes.
//!
//! `pread` rather than a memory map: an image truncated or rewritten under a live mount must
//! give an I/O error, not a SIGBUS.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::error::{corrupt, Result};

/// The image: a file and the byte offset the SquashFS starts at inside it.
#[derive(Debug)]
pub struct Source {
    file: File,
    offset: u64,
    /// The image's length as the superblock declares it (`bytes_used`), once known.
    len: u64,
}

impl Source {
    pub fn new(file: File, offset: u64) -> Self {
        Source {
            file,
            offset,
            len: u64::MAX,
        }
    }

    /// Bytes from `offset` to the end of the file, or 0 when the offset is past it.
    pub fn available(&self) -> Result<u64> {
        Ok(self.file.metadata()?.len().saturating_sub(self.offset))
    }

    /// Limits every later read to the first `len` bytes of the image.
    pub fn set_len(&mut self, len: u64) {
        self.len = len;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the first bytes of the image before its length is known (magic checks).
    pub fn read_prefix(&self, buf: &mut [u8]) -> Result<()> {
        Ok(self.file.read_exact_at(buf, self.offset)?)
    }

    /// Fills `buf` from image position `pos`; a range past the image end is corruption.
    pub fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        let end = pos
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| {
                corrupt!("read of {} bytes at {pos} is past the image end", buf.len())
            })?;
        let _ = end;
        let at = self.offset + pos;
        self.file.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt!("image file is shorter than the image (truncated at {at}?)")
            } else {
                e.into()
            }
        })
    }
}
