//! Decompressors for every codec mksquashfs and gensquashfs write, behind one trait.

use crate::error::Result;

/// The compressor ids stored in the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip = 1,
    Lzma = 2,
    Lzo = 3,
    Xz = 4,
    Lz4 = 5,
    Zstd = 6,
}

/// Decompresses one block. Implementations are shared by all reader threads.
pub trait Decompressor: Send + Sync {
    /// Decompresses `src` into `dst` and returns how many bytes were written.
    /// Output that would exceed `dst.len()` is an error, never a reallocation.
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize>;
}

impl Compression {
    /// Maps a superblock compressor id to a codec.
    pub fn from_id(id: u16) -> Result<Self> {
        todo!("compress: from_id {id}")
    }

    /// The name mksquashfs uses for this codec (`gzip`, `lzma`, `lzo`, `xz`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        todo!()
    }
}

/// Builds the decompressor for `codec`. `options` is the decompressed compressor-options
/// metadata block when the superblock's COMPRESSOR_OPTIONS flag is set; it is validated here.
pub fn new_decompressor(codec: Compression, options: Option<&[u8]>) -> Result<Box<dyn Decompressor>> {
    todo!("{codec:?} {options:?}")
}
