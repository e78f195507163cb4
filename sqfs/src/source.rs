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
    /// How many bytes from `offset` belong to the image at most: the size of the container
    /// object it is (a SIF partition), or unbounded.
    limit: u64,
    /// The image's length as the superblock declares it (`bytes_used`), once known; until
    /// then, `limit`.
    len: u64,
}

impl Source {
    /// The image from `offset` to the end of the file.
    pub fn new(file: File, offset: u64) -> Self {
        Self::bounded(file, offset, u64::MAX)
    }

    /// The image in the `limit` bytes from `offset`: one object of a container file.
    /// Nothing past them is read, however far the file goes on.
    pub fn bounded(file: File, offset: u64, limit: u64) -> Self {
        Source {
            file,
            offset,
            limit,
            len: limit,
        }
    }

    /// Bytes from `offset` to the end of the file or of the container object, whichever
    /// comes first; 0 when the offset is past it.
    pub fn available(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()?
            .len()
            .saturating_sub(self.offset)
            .min(self.limit))
    }

    /// Limits every later read to the first `len` bytes of the image (never past the
    /// container object's end).
    pub fn set_len(&mut self, len: u64) {
        self.len = len.min(self.limit);
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the first bytes of the image before its length is known (magic checks).
    pub fn read_prefix(&self, buf: &mut [u8]) -> Result<()> {
        self.read_exact_at(0, buf)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!(
            "sqfs-source-test-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn a_bounded_source_never_reads_past_its_object() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut source = Source::bounded(file_of(&bytes), 100, 50);
        assert_eq!(source.available().unwrap(), 50);
        let mut buf = [0u8; 10];
        source.read_exact_at(40, &mut buf).unwrap();
        assert_eq!(buf[0], 140);
        // The file goes on for 106 more bytes, but they are not the image's.
        let err = source.read_exact_at(41, &mut buf).unwrap_err();
        assert!(err.to_string().contains("past the image end"), "{err}");
        // Nor can a superblock widen the bound.
        source.set_len(1000);
        assert_eq!(source.len(), 50);
        assert!(source.read_exact_at(45, &mut buf).is_err());
        // Near the end of the file, the file's end bounds it.
        assert_eq!(
            Source::bounded(file_of(&bytes), 250, 50)
                .available()
                .unwrap(),
            6
        );
    }
}
