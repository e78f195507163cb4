//! Extended attributes as the writer stores them: each distinct set once (inodes with the
//! same set share its xattr id), its entries sorted by name, and a value that was stored
//! before (8 bytes or more) referenced out of line instead of stored again.

use std::collections::HashMap;

use super::error::{show, WriteError, WriteResult, XattrProblem};
use crate::compress::Encoding;
use crate::metadata::MetaWriter;
use crate::xattr::{encode_entry, encode_id, list_fits, split_name, value_fits, PREFIXES};
use crate::Xattr;

/// An out-of-line reference is 8 bytes: shorter values are always stored inline.
const OUT_OF_LINE_MIN: usize = 8;

pub(super) struct Xattrs {
    /// The key/value table's stream.
    kv: MetaWriter,
    /// The xattr id table's entries.
    ids: Vec<u8>,
    count: u32,
    sets: HashMap<Vec<Xattr>, u32>,
    /// Where each value stored inline so far is: the stream offset of its length word.
    values: HashMap<Vec<u8>, u64>,
}

impl Xattrs {
    pub(super) fn new(encoding: &Encoding) -> WriteResult<Self> {
        Ok(Xattrs {
            kv: MetaWriter::new(encoding.compressor()?),
            ids: Vec::new(),
            count: 0,
            sets: HashMap::new(),
            values: HashMap::new(),
        })
    }

    /// The xattr id of `set` (stored now if it is new); None for an empty set.
    pub(super) fn intern(&mut self, mut set: Vec<Xattr>) -> WriteResult<Option<u32>> {
        if set.is_empty() {
            return Ok(None);
        }
        set.sort_by(|a, b| a.name.cmp(&b.name));
        set.dedup_by(|a, b| a.name == b.name);
        check(&set)?;
        if let Some(&id) = self.sets.get(&set) {
            return Ok(Some(id));
        }
        let list = self.kv.position();
        let mut size = 0u32;
        let mut entry = Vec::new();
        for x in &set {
            let (prefix, name) = split_name(&x.name).expect("checked above");
            entry.clear();
            let earlier = (x.value.len() >= OUT_OF_LINE_MIN)
                .then(|| self.values.get(&x.value))
                .flatten()
                .map(|&at| self.kv.reference(at));
            match earlier {
                Some(at) => encode_entry(&mut entry, prefix, name, Err(at)),
                None => {
                    // The value's length word follows the 4 bytes of type and name size
                    // and the name: remember where, for later copies to point at.
                    let value_at = self.kv.stream_len() + 4 + name.len() as u64;
                    encode_entry(&mut entry, prefix, name, Ok(&x.value));
                    if x.value.len() >= OUT_OF_LINE_MIN {
                        self.values.insert(x.value.clone(), value_at);
                    }
                }
            }
            self.kv.write(&entry)?;
            size = size.saturating_add((x.name.len() + 1 + x.value.len()) as u32);
        }
        let id = self.count;
        self.count = self.count.checked_add(1).ok_or(WriteError::TooManyInodes)?;
        encode_id(&mut self.ids, list, set.len() as u32, size);
        self.sets.insert(set, id);
        Ok(Some(id))
    }

    /// How many sets are stored.
    pub(super) fn count(&self) -> u32 {
        self.count
    }

    /// The key/value table's bytes and the id table's entries.
    pub(super) fn finish(self) -> WriteResult<(Vec<u8>, Vec<u8>)> {
        Ok((self.kv.finish()?, self.ids))
    }
}

/// Checks that `set` (sorted, each name once) is what it will be stored as and read back:
/// every name one the reader takes and Linux can list, and the whole set within the
/// reader's bounds for one list ([`list_fits`]), so the writer never makes an image its
/// own reader (or the kernel's listxattr) calls corrupt.
fn check(set: &[Xattr]) -> WriteResult<()> {
    let (mut names, mut values) = (0usize, 0usize);
    for x in set {
        names += x.name.len() + 1;
        values += x.value.len();
        let problem = match split_name(&x.name) {
            Some(_) if x.name.contains(&0) => XattrProblem::Nul,
            Some(_) if !value_fits(x.value.len()) => XattrProblem::LongValue,
            Some(_) if !list_fits(names, 0) => XattrProblem::ListTooLong,
            Some(_) if !list_fits(0, values) => XattrProblem::ValuesTooBig,
            Some(_) => continue,
            None if !PREFIXES.iter().any(|p| x.name.starts_with(p)) => XattrProblem::Prefix,
            None if PREFIXES.contains(&&x.name[..]) => XattrProblem::EmptyName,
            None => XattrProblem::LongName,
        };
        return Err(WriteError::Xattr {
            name: show(&x.name),
            problem,
        });
    }
    Ok(())
}
