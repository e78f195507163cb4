//! The 96-byte superblock at the start of every image, and its sanity checks.

use crate::compress::Compression;
use crate::error::{corrupt, Error, Result};

pub const MAGIC: u32 = 0x7371_7368;
pub const SUPERBLOCK_SIZE: usize = 96;
/// Absent optional tables (fragments, export, xattrs) point here.
pub const NO_TABLE: u64 = u64::MAX;

/// Superblock flag bits, as mksquashfs writes them (see [`Superblock::has`]).
pub mod flags {
    pub const UNCOMPRESSED_INODES: u16 = 0x0001;
    pub const UNCOMPRESSED_DATA: u16 = 0x0002;
    pub const CHECK: u16 = 0x0004;
    pub const UNCOMPRESSED_FRAGMENTS: u16 = 0x0008;
    pub const NO_FRAGMENTS: u16 = 0x0010;
    pub const ALWAYS_FRAGMENTS: u16 = 0x0020;
    pub const DUPLICATES: u16 = 0x0040;
    pub const EXPORTABLE: u16 = 0x0080;
    pub const UNCOMPRESSED_XATTRS: u16 = 0x0100;
    pub const NO_XATTRS: u16 = 0x0200;
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
    pub const UNCOMPRESSED_IDS: u16 = 0x0800;

    /// Each flag with the name `sqfs info` prints for it.
    pub const NAMES: [(u16, &str); 12] = [
        (UNCOMPRESSED_INODES, "uncompressed-inodes"),
        (UNCOMPRESSED_DATA, "uncompressed-data"),
        (CHECK, "check"),
        (UNCOMPRESSED_FRAGMENTS, "uncompressed-fragments"),
        (NO_FRAGMENTS, "no-fragments"),
        (ALWAYS_FRAGMENTS, "always-fragments"),
        (DUPLICATES, "duplicates"),
        (EXPORTABLE, "exportable"),
        (UNCOMPRESSED_XATTRS, "uncompressed-xattrs"),
        (NO_XATTRS, "no-xattrs"),
        (COMPRESSOR_OPTIONS, "compressor-options"),
        (UNCOMPRESSED_IDS, "uncompressed-ids"),
    ];
}

/// The decoded superblock. Table starts are relative to the start of the image.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub inode_count: u32,
    pub mkfs_time: u32,
    pub block_size: u32,
    pub block_log: u16,
    pub fragment_count: u32,
    pub compression: Compression,
    pub flags: u16,
    pub id_count: u16,
    pub root_inode: u64,
    pub bytes_used: u64,
    pub id_table_start: u64,
    pub xattr_id_table_start: u64,
    pub inode_table_start: u64,
    pub directory_table_start: u64,
    pub fragment_table_start: u64,
    pub export_table_start: u64,
}

/// Where each field lies in the superblock (the kernel's `struct squashfs_super_block`).
mod at {
    pub const MAGIC: usize = 0;
    pub const INODE_COUNT: usize = 4;
    pub const MKFS_TIME: usize = 8;
    pub const BLOCK_SIZE: usize = 12;
    pub const FRAGMENT_COUNT: usize = 16;
    pub const COMPRESSION: usize = 20;
    pub const BLOCK_LOG: usize = 22;
    pub const FLAGS: usize = 24;
    pub const ID_COUNT: usize = 26;
    pub const VERSION_MAJOR: usize = 28;
    pub const VERSION_MINOR: usize = 30;
    pub const ROOT_INODE: usize = 32;
    pub const BYTES_USED: usize = 40;
    pub const ID_TABLE: usize = 48;
    pub const XATTR_ID_TABLE: usize = 56;
    pub const INODE_TABLE: usize = 64;
    pub const DIRECTORY_TABLE: usize = 72;
    pub const FRAGMENT_TABLE: usize = 80;
    pub const EXPORT_TABLE: usize = 88;
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Superblock {
    /// Decodes and validates a superblock. `image_len` is how many bytes the image may span
    /// (the file's length minus the offset the image starts at).
    pub(crate) fn parse(b: &[u8; SUPERBLOCK_SIZE], image_len: u64) -> Result<Self> {
        if u32_at(b, at::MAGIC) != MAGIC {
            return Err(Error::BadMagic);
        }
        let (major, minor) = (u16_at(b, at::VERSION_MAJOR), u16_at(b, at::VERSION_MINOR));
        if (major, minor) != (4, 0) {
            return Err(Error::UnsupportedVersion(major, minor));
        }
        let sb = Superblock {
            inode_count: u32_at(b, at::INODE_COUNT),
            mkfs_time: u32_at(b, at::MKFS_TIME),
            block_size: u32_at(b, at::BLOCK_SIZE),
            fragment_count: u32_at(b, at::FRAGMENT_COUNT),
            compression: Compression::from_id(u16_at(b, at::COMPRESSION))?,
            block_log: u16_at(b, at::BLOCK_LOG),
            flags: u16_at(b, at::FLAGS),
            id_count: u16_at(b, at::ID_COUNT),
            root_inode: u64_at(b, at::ROOT_INODE),
            bytes_used: u64_at(b, at::BYTES_USED),
            id_table_start: u64_at(b, at::ID_TABLE),
            xattr_id_table_start: u64_at(b, at::XATTR_ID_TABLE),
            inode_table_start: u64_at(b, at::INODE_TABLE),
            directory_table_start: u64_at(b, at::DIRECTORY_TABLE),
            fragment_table_start: u64_at(b, at::FRAGMENT_TABLE),
            export_table_start: u64_at(b, at::EXPORT_TABLE),
        };
        sb.validate(image_len)?;
        Ok(sb)
    }

    /// The 96 bytes of this superblock, as [`Superblock::parse`] reads them (version 4.0).
    pub(crate) fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(at::MAGIC, &MAGIC.to_le_bytes());
        put(at::INODE_COUNT, &self.inode_count.to_le_bytes());
        put(at::MKFS_TIME, &self.mkfs_time.to_le_bytes());
        put(at::BLOCK_SIZE, &self.block_size.to_le_bytes());
        put(at::FRAGMENT_COUNT, &self.fragment_count.to_le_bytes());
        put(at::COMPRESSION, &(self.compression as u16).to_le_bytes());
        put(at::BLOCK_LOG, &self.block_log.to_le_bytes());
        put(at::FLAGS, &self.flags.to_le_bytes());
        put(at::ID_COUNT, &self.id_count.to_le_bytes());
        put(at::VERSION_MAJOR, &4u16.to_le_bytes());
        put(at::VERSION_MINOR, &0u16.to_le_bytes());
        put(at::ROOT_INODE, &self.root_inode.to_le_bytes());
        put(at::BYTES_USED, &self.bytes_used.to_le_bytes());
        put(at::ID_TABLE, &self.id_table_start.to_le_bytes());
        put(at::XATTR_ID_TABLE, &self.xattr_id_table_start.to_le_bytes());
        put(at::INODE_TABLE, &self.inode_table_start.to_le_bytes());
        put(
            at::DIRECTORY_TABLE,
            &self.directory_table_start.to_le_bytes(),
        );
        put(at::FRAGMENT_TABLE, &self.fragment_table_start.to_le_bytes());
        put(at::EXPORT_TABLE, &self.export_table_start.to_le_bytes());
        b
    }

    fn validate(&self, image_len: u64) -> Result<()> {
        let bs = self.block_size;
        if !(4096..=1 << 20).contains(&bs) || !bs.is_power_of_two() {
            return Err(corrupt!(
                "block size {bs} is not a power of two in 4 KiB..1 MiB"
            ));
        }
        if u32::from(self.block_log) >= 32 || 1u32 << self.block_log != bs {
            return Err(corrupt!(
                "block_log {} does not match block size {bs}",
                self.block_log
            ));
        }
        if self.bytes_used > image_len {
            return Err(corrupt!(
                "image claims {} bytes but only {image_len} are there (truncated?)",
                self.bytes_used
            ));
        }
        if self.bytes_used < SUPERBLOCK_SIZE as u64 {
            return Err(corrupt!(
                "bytes_used {} is smaller than a superblock",
                self.bytes_used
            ));
        }
        if self.inode_count == 0 {
            return Err(corrupt!("inode count is 0"));
        }
        if self.id_count == 0 {
            return Err(corrupt!("id count is 0"));
        }
        // Tables appear in this order on disk; every start must be inside the image.
        let start = SUPERBLOCK_SIZE as u64;
        if self.inode_table_start < start || self.inode_table_start >= self.directory_table_start {
            return Err(corrupt!("inode table does not precede the directory table"));
        }
        for (name, at, optional) in [
            ("directory", self.directory_table_start, false),
            ("fragment", self.fragment_table_start, true),
            ("export", self.export_table_start, true),
            ("id", self.id_table_start, false),
            ("xattr", self.xattr_id_table_start, true),
        ] {
            if optional && at == NO_TABLE {
                continue;
            }
            if at >= self.bytes_used {
                return Err(corrupt!("{name} table starts at {at}, past the image end"));
            }
        }
        if self.fragment_count > 0 && self.fragment_table_start == NO_TABLE {
            return Err(corrupt!(
                "{} fragments but no fragment table",
                self.fragment_count
            ));
        }
        Ok(())
    }

    /// Whether the superblock has `flag` (one of [`flags`]) set.
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_gives_the_same_superblock() {
        let sb = Superblock {
            inode_count: 7,
            mkfs_time: 0xdead_beef,
            block_size: 1 << 17,
            block_log: 17,
            fragment_count: 3,
            compression: Compression::Zstd,
            flags: flags::DUPLICATES | flags::EXPORTABLE,
            id_count: 2,
            root_inode: 0x1234_0056,
            bytes_used: 10_000,
            id_table_start: 9_000,
            xattr_id_table_start: NO_TABLE,
            inode_table_start: 500,
            directory_table_start: 6_000,
            fragment_table_start: 7_000,
            export_table_start: 8_000,
        };
        let bytes = sb.encode();
        assert_eq!(&bytes[..4], b"hsqs");
        let back = Superblock::parse(&bytes, 10_000).unwrap();
        assert_eq!(format!("{back:?}"), format!("{sb:?}"));
    }
}
