//! The owners an image names: each distinct uid and gid once in the id table, inodes
//! holding their index. Indexes are handed out in the order owners are first seen, so
//! the table depends only on the order entries are added.

use std::collections::HashMap;

use super::error::{WriteError, WriteResult};
use crate::id::IdTable;

#[derive(Default)]
pub(super) struct Owners {
    ids: Vec<u32>,
    index: HashMap<u32, u16>,
}

impl Owners {
    /// The id table index of `id`, which is added if it is new.
    pub(super) fn index(&mut self, id: u32) -> WriteResult<u16> {
        if let Some(&i) = self.index.get(&id) {
            return Ok(i);
        }
        // The superblock counts ids in 16 bits.
        let i = u16::try_from(self.ids.len())
            .ok()
            .filter(|&i| i < u16::MAX)
            .ok_or(WriteError::TooManyIds)?;
        self.ids.push(id);
        self.index.insert(id, i);
        Ok(i)
    }

    /// How many ids there are (at least one: the root's owner is always added first).
    pub(super) fn count(&self) -> u16 {
        self.ids.len() as u16
    }

    /// The id table's entries.
    pub(super) fn entries(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ids.len() * 4);
        self.ids
            .iter()
            .for_each(|&id| IdTable::encode_entry(&mut out, id));
        out
    }
}
