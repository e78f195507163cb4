//! Extended attributes: the xattr id table (per-inode lists) and the key/value table.

use crate::error::{corrupt, Result};
use crate::metadata::{MetaRef, Table};
use crate::reader::BlockReader;
use crate::table::LookupTable;

/// Value stored elsewhere in the table; the inline value is an 8-byte reference to it.
const VALUE_OUT_OF_LINE: u16 = 0x0100;
/// Linux refuses longer names and values (XATTR_NAME_MAX, XATTR_SIZE_MAX).
const MAX_NAME: usize = 255;
const MAX_VALUE: u32 = 65536;
const PREFIXES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

/// One extended attribute, with its full name (`user.foo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Debug)]
pub struct XattrTable {
    ids: LookupTable,
    kv: Table,
}

impl XattrTable {
    /// Reads the xattr id table header at `start`; the table runs to the image end.
    pub fn read(reader: &BlockReader, start: u64, image_end: u64, lowest: u64) -> Result<Self> {
        let mut header = [0u8; 16];
        reader.source().read_exact_at(start, &mut header)?;
        let kv_start = u64::from_le_bytes(header[0..8].try_into().expect("8"));
        let count = u32::from_le_bytes(header[8..12].try_into().expect("4"));
        if kv_start < lowest || kv_start >= start {
            return Err(corrupt!("xattr table start {kv_start} out of place"));
        }
        let ids = LookupTable::read(
            reader,
            "xattr id",
            start,
            start + 16,
            image_end,
            kv_start,
            u64::from(count),
            16,
        )?;
        let kv = Table {
            start: kv_start,
            end: ids.first_block(),
        };
        Ok(XattrTable { ids, kv })
    }

    /// Where the key/value table starts: the end of the table ahead of it.
    pub fn first_block(&self) -> u64 {
        self.kv.start
    }

    pub fn count(&self) -> u64 {
        self.ids.count()
    }

    /// Every xattr of the inode whose xattr index is `index`, in stored order.
    pub fn list(&self, reader: &BlockReader, index: u32) -> Result<Vec<Xattr>> {
        let mut entry = self.ids.entry(reader, u64::from(index))?;
        let at = MetaRef::from_packed(entry.u64()?);
        let count = entry.u32()?;
        let _size = entry.u32()?;
        let mut c = self.kv.cursor(reader, at)?;
        let mut out = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
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
            let value = if kind & VALUE_OUT_OF_LINE != 0 {
                if value_len != 8 {
                    return Err(corrupt!("out-of-line xattr reference of {value_len} bytes"));
                }
                let mut v = self.kv.cursor(reader, MetaRef::from_packed(c.u64()?))?;
                let len = v.u32()?;
                check_value_len(len)?;
                v.bytes(len as usize)?
            } else {
                check_value_len(value_len)?;
                c.bytes(value_len as usize)?
            };
            out.push(Xattr { name, value });
        }
        Ok(out)
    }
}

fn check_value_len(len: u32) -> Result<()> {
    if len > MAX_VALUE {
        return Err(corrupt!("xattr value of {len} bytes"));
    }
    Ok(())
}
