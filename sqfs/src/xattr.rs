//! Extended attributes: the xattr id table (per-inode lists) and the key/value table.

use crate::error::{corrupt, Result};
use crate::metadata::{MetaCursor, MetaRef, Table};
use crate::reader::BlockReader;
use crate::table::{Bounds, Chained, IndexEnd, Layout, LookupTable};

/// Value stored elsewhere in the table; the inline value is an 8-byte reference to it.
const VALUE_OUT_OF_LINE: u16 = 0x0100;
/// Linux refuses longer names and values (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const MAX_NAME: usize = 255;
const MAX_VALUE: u32 = 65536;
/// Bytes of names (with prefixes and NULs) Linux can list for one inode (XATTR_LIST_MAX).
const MAX_LIST_NAMES: usize = 65536;
/// Bytes of values one list may hold. Out-of-line values are references, so without a
/// bound every 17 stored bytes could cost a 64 KiB value.
const MAX_LIST_VALUES: usize = 16 << 20;
/// The prefixes SquashFS stores, by their type number (the writer names them in errors).
pub(crate) const PREFIXES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

/// One extended attribute, with its full name (`user.foo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Debug)]
pub struct XattrTable {
    ids: LookupTable,
    kv: Table,
}

impl Chained for XattrTable {
    /// Where the key/value table starts: the end of the table ahead of it.
    fn first_block(&self) -> u64 {
        self.kv.start
    }
}

impl XattrTable {
    /// Reads the xattr id table's header at `start`, then its index, which must end exactly
    /// at `bounds.next` (the image's end: squashfs_read_xattr_id_table() requires it).
    pub fn read(reader: &BlockReader, start: u64, bounds: Bounds) -> Result<Self> {
        let mut header = [0u8; 16];
        reader.source().read_exact_at(start, &mut header)?;
        let kv_start = u64::from_le_bytes(header[0..8].try_into().expect("8"));
        let count = u32::from_le_bytes(header[8..12].try_into().expect("4"));
        // squashfs_read_xattr_id_table(): "there is always at least one xattr id" (neither
        // mksquashfs nor gensquashfs writes the table for an image without xattrs).
        if count == 0 {
            return Err(corrupt!("xattr id table with no entries"));
        }
        if kv_start < bounds.lowest || kv_start >= start {
            return Err(corrupt!("xattr table start {kv_start} out of place"));
        }
        let layout = Layout {
            name: "xattr id",
            entry_size: 16,
            count: u64::from(count),
            start,
            index_start: start + 16,
            index_end: IndexEnd::AtNext,
        };
        // The id blocks follow the key/value table.
        let id_bounds = Bounds {
            lowest: kv_start,
            ..bounds
        };
        let ids = LookupTable::read(reader, &layout, id_bounds)?;
        // The key/value table holds at least one block, before the id blocks (the kernel
        // checks xattr_table_start < table[0]).
        if ids.first_block() <= kv_start {
            return Err(corrupt!("xattr key/value table at {kv_start} is empty"));
        }
        let kv = Table {
            start: kv_start,
            end: ids.first_block(),
        };
        Ok(XattrTable { ids, kv })
    }

    pub fn count(&self) -> u64 {
        self.ids.count()
    }

    /// Every xattr of the inode whose xattr index is `index`, in stored order.
    pub fn list(&self, reader: &BlockReader, index: u32) -> Result<Vec<Xattr>> {
        let (mut c, count) = self.open_list(reader, index)?;
        let mut out = Vec::with_capacity(count.min(64) as usize);
        let (mut names, mut values) = (0usize, 0usize);
        for _ in 0..count {
            let (name, value) = self.read_entry(reader, &mut c, |_| true)?;
            let value = value.unwrap_or_default();
            names += name.len() + 1;
            values += value.len();
            if !list_fits(names, values) {
                return Err(corrupt!(
                    "xattr list {index} holds more than {MAX_LIST_NAMES} bytes of names or \
                     {MAX_LIST_VALUES} bytes of values"
                ));
            }
            out.push(Xattr { name, value });
        }
        Ok(out)
    }

    /// The value of the first xattr called `name` (with its prefix) in the list `index`.
    /// Reads no other value, as the kernel's getxattr, so its cost is bounded by the list's
    /// stored size.
    pub fn get(&self, reader: &BlockReader, index: u32, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let (mut c, count) = self.open_list(reader, index)?;
        for _ in 0..count {
            if let (_, Some(value)) = self.read_entry(reader, &mut c, |n| n == name)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Checks that list `index` exists and its id entry can be read (what the kernel's
    /// squashfs_read_inode() does for every inode with xattrs).
    pub fn locate(&self, reader: &BlockReader, index: u32) -> Result<()> {
        self.open_list(reader, index).map(|_| ())
    }

    /// A cursor at the first entry of list `index`, and the list's entry count.
    fn open_list<'a>(&self, reader: &'a BlockReader, index: u32) -> Result<(MetaCursor<'a>, u32)> {
        let mut entry = self.ids.entry(reader, u64::from(index))?;
        let at = MetaRef::from_packed(entry.u64()?);
        let count = entry.u32()?;
        // The list's `size` is not checked: the kernel reads lists by their count alone and
        // uses `size` only for i_blocks (squashfs_read_inode(), squashfs_listxattr(),
        // squashfs_xattr_get()), and the writers disagree on what it counts: mksquashfs
        // 4.5.1 stores the listxattr bytes plus the values' lengths, gensquashfs 1.2.0 the
        // list's stored bytes (an out-of-line value counting 8). Either check would refuse
        // the other's images; the list's bytes are bounded by the caps above instead.
        let _size = entry.u32()?;
        Ok((self.kv.cursor(reader, at)?, count))
    }

    /// Reads the entry at `c`: its full name, and its value when `want(name)` (otherwise the
    /// value is skipped, and an out-of-line one is not even looked at).
    fn read_entry(
        &self,
        reader: &BlockReader,
        c: &mut MetaCursor,
        want: impl FnOnce(&[u8]) -> bool,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        let kind = c.u16()?;
        let name_len = usize::from(c.u16()?);
        let prefix = PREFIXES
            .get(usize::from(kind & !VALUE_OUT_OF_LINE))
            .ok_or_else(|| corrupt!("unknown xattr prefix type {kind}"))?;
        if name_len == 0 || name_len + prefix.len() > MAX_NAME {
            return Err(corrupt!("xattr name of {name_len} bytes"));
        }
        let mut name = prefix.to_vec();
        name.extend(c.bytes(name_len)?);
        let value_len = c.u32()?;
        let wanted = want(&name);
        let value = if kind & VALUE_OUT_OF_LINE != 0 {
            if value_len != 8 {
                return Err(corrupt!("out-of-line xattr reference of {value_len} bytes"));
            }
            let reference = MetaRef::from_packed(c.u64()?);
            if wanted {
                let mut v = self.kv.cursor(reader, reference)?;
                let len = v.u32()?;
                check_value_len(len)?;
                Some(v.bytes(len as usize)?)
            } else {
                None
            }
        } else {
            check_value_len(value_len)?;
            if wanted {
                Some(c.bytes(value_len as usize)?)
            } else {
                c.skip(u64::from(value_len))?;
                None
            }
        };
        Ok((name, value))
    }
}

/// The prefix index (0: `user.`, 1: `trusted.`, 2: `security.`) and the rest of a full
/// xattr name, if it has one of the three prefixes SquashFS stores (and a rest that fits).
pub(crate) fn split_name(full: &[u8]) -> Option<(u16, &[u8])> {
    PREFIXES.iter().enumerate().find_map(|(i, prefix)| {
        full.strip_prefix(*prefix)
            .filter(|rest| !rest.is_empty() && full.len() <= MAX_NAME)
            .map(|rest| (i as u16, rest))
    })
}

/// Whether a list whose names (each with its prefix and NUL) take `names` bytes and whose
/// values take `values` bytes is one [`XattrTable::list`] reads back: the writer applies
/// the same rule to what it stores.
pub(crate) fn list_fits(names: usize, values: usize) -> bool {
    names <= MAX_LIST_NAMES && values <= MAX_LIST_VALUES
}

/// Whether a value of this length can be stored (Linux's XATTR_SIZE_MAX).
pub(crate) fn value_fits(len: usize) -> bool {
    len <= MAX_VALUE as usize
}

/// Appends an xattr entry as `read_entry` reads it: prefix, name, then the value inline
/// (`Ok(value)`) or a reference to where a value is stored already (`Err(at)`, pointing
/// at its length word: the same layout an inline value has).
pub(crate) fn encode_entry(
    out: &mut Vec<u8>,
    prefix: u16,
    name: &[u8],
    value: std::result::Result<&[u8], MetaRef>,
) {
    let kind = prefix | if value.is_err() { VALUE_OUT_OF_LINE } else { 0 };
    out.extend(kind.to_le_bytes());
    out.extend((name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    match value {
        Ok(v) => {
            out.extend((v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        Err(at) => {
            out.extend(8u32.to_le_bytes());
            out.extend(at.packed().to_le_bytes());
        }
    }
}

/// Appends an xattr id table entry: where the list starts, its entry count and its size
/// (mksquashfs's: the listxattr bytes plus the values' lengths).
pub(crate) fn encode_id(out: &mut Vec<u8>, list: MetaRef, count: u32, size: u32) {
    out.extend(list.packed().to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(size.to_le_bytes());
}

/// The 16-byte header in front of the xattr id table's index.
pub(crate) fn encode_table_header(kv_start: u64, count: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&kv_start.to_le_bytes());
    h[8..12].copy_from_slice(&count.to_le_bytes());
    h
}

fn check_value_len(len: u32) -> Result<()> {
    if len > MAX_VALUE {
        return Err(corrupt!("xattr value of {len} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::FromRawFd;

    use super::*;
    use crate::compress::{new_decompressor, Compression};
    use crate::reader::METADATA_SIZE;
    use crate::source::Source;

    /// `stream` stored as uncompressed metadata blocks.
    fn blocks(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in stream.chunks(METADATA_SIZE) {
            out.extend((0x8000 | chunk.len() as u16).to_le_bytes());
            out.extend(chunk);
        }
        out
    }

    /// A reader over `image` (held in a memfd).
    fn reader(image: &[u8]) -> BlockReader {
        // SAFETY: a fresh descriptor from memfd_create, owned by the File from here on.
        let file = unsafe {
            let fd = libc::memfd_create(c"sqfs-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0);
            std::fs::File::from_raw_fd(fd)
        };
        (&file).write_all(image).unwrap();
        let mut source = Source::new(file, 0);
        source.set_len(image.len() as u64);
        let d = new_decompressor(Compression::Gzip, None).unwrap();
        BlockReader::new(source, d, 1 << 20, 131072)
    }

    /// One inode's list of `count` entries `user.a`, each an out-of-line reference to the
    /// same 64 KiB value: 17 stored bytes per entry.
    fn shared_value_image(count: u32) -> (Vec<u8>, u64) {
        let mut kv = Vec::new();
        kv.extend((MAX_VALUE).to_le_bytes());
        kv.resize(4 + MAX_VALUE as usize, b'v');
        let list_at = kv.len();
        for _ in 0..count {
            kv.extend((VALUE_OUT_OF_LINE).to_le_bytes());
            kv.extend(1u16.to_le_bytes());
            kv.push(b'a');
            kv.extend(8u32.to_le_bytes());
            kv.extend(0u64.to_le_bytes());
        }
        let mut image = blocks(&kv);
        let block = (list_at / METADATA_SIZE * (METADATA_SIZE + 2)) as u64;
        let list = MetaRef {
            block,
            offset: (list_at % METADATA_SIZE) as u16,
        };
        let ids_at = image.len() as u64;
        let mut entry = list.packed().to_le_bytes().to_vec();
        entry.extend(count.to_le_bytes());
        entry.extend(0u32.to_le_bytes());
        image.extend(blocks(&entry));
        let start = image.len() as u64;
        image.extend(0u64.to_le_bytes());
        image.extend(1u32.to_le_bytes());
        image.extend(0u32.to_le_bytes());
        image.extend(ids_at.to_le_bytes());
        (image, start)
    }

    #[test]
    fn a_list_of_shared_values_is_bounded() {
        let (image, start) = shared_value_image(3);
        let r = reader(&image);
        let bounds = Bounds {
            lowest: 0,
            next: image.len() as u64,
        };
        let table = XattrTable::read(&r, start, bounds).unwrap();
        let list = table.list(&r, 0).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list
            .iter()
            .all(|x| x.name == b"user.a" && x.value.len() == MAX_VALUE as usize));

        // 8000 entries (136 KB stored) would be 500 MiB of values.
        let (image, start) = shared_value_image(8000);
        let r = reader(&image);
        let bounds = Bounds {
            lowest: 0,
            next: image.len() as u64,
        };
        let table = XattrTable::read(&r, start, bounds).unwrap();
        // The kernel's getxattr reads one value only; so does `get`.
        let value = table.get(&r, 0, b"user.a").unwrap().unwrap();
        assert_eq!(value.len(), MAX_VALUE as usize);
        assert_eq!(table.get(&r, 0, b"user.b").unwrap(), None);
        let result = table.list(&r, 0);
        assert!(
            matches!(result, Err(crate::Error::Corrupt(_))),
            "{:?}",
            result.map(|l| l.len())
        );
    }
}
