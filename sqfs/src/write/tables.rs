//! The metadata, written once every data block is: inodes numbered and stored, each
//! directory's listing, the fragment, export, id and xattr tables, then the superblock.
//!
//! Inodes are numbered in post-order, as mksquashfs numbers them: a directory's entries
//! (each subdirectory with everything under it) before the directory, the root last. In
//! that order every listing names inodes already stored, whose positions are known, and
//! each directory's listing goes into the directory table just before its inode goes into
//! the inode table.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::blocklist::{self, HoleRuns};
use super::data::Blocks;
use super::error::{WriteError, WriteResult};
use super::owners::Owners;
use super::pipeline::Placed;
use super::tree::{Body, Tree};
use super::xattrs::Xattrs;
use super::{Fragments, WriteOptions, WriteSummary};
use crate::compress::Encoding;
use crate::dir::{encode_index_entry, ListingWriter};
use crate::export::ExportTable;
use crate::fragment::FragmentTable;
use crate::inode::{NewBody, NewInode};
use crate::metadata::{MetaRef, MetaWriter};
use crate::reader::MetadataHeader;
use crate::superblock::{flags, Superblock, NO_TABLE, SUPERBLOCK_SIZE};
use crate::table::encode_lookup_table;
use crate::xattr::encode_table_header;

/// The image is padded to a multiple of this (a loop device drops a partial last sector;
/// mksquashfs pads to 4 KiB too).
const PAD: u64 = 4096;

pub(super) struct Input<'a> {
    pub out: &'a File,
    pub options: &'a WriteOptions,
    pub encoding: &'a Encoding,
    pub tree: Tree,
    pub owners: Owners,
    pub xattrs: Xattrs,
    pub blocks: Blocks,
    pub bytes_read: u64,
    pub duplicates: u64,
}

/// The tree's nodes in inode number order (post-order, see the module's comment), without
/// recursion: the stack holds each open directory and the next of its entries to visit.
fn post_order(tree: &Tree) -> Vec<u32> {
    let mut order = Vec::with_capacity(tree.nodes.len());
    let mut seen = vec![false; tree.nodes.len()];
    let mut stack = vec![(0u32, 0usize)];
    seen[0] = true;
    while let Some((dir, next)) = stack.last_mut() {
        let Body::Dir(entries) = &tree.nodes[*dir as usize].body else {
            unreachable!("only directories are stacked")
        };
        let Some(entry) = entries.get(*next) else {
            order.push(*dir);
            stack.pop();
            continue;
        };
        *next += 1;
        let child = entry.node;
        if std::mem::replace(&mut seen[child as usize], true) {
            continue;
        }
        match tree.nodes[child as usize].body {
            Body::Dir(_) => stack.push((child, 0)),
            _ => order.push(child),
        }
    }
    order
}

/// Writes `bytes` at `pos`; the position after them.
fn put(out: &File, pos: u64, bytes: &[u8]) -> WriteResult<u64> {
    out.write_all_at(bytes, pos).map_err(WriteError::Output)?;
    Ok(pos + bytes.len() as u64)
}

pub(super) fn write(input: Input) -> WriteResult<WriteSummary> {
    let Input {
        out,
        options,
        encoding,
        mut tree,
        owners,
        xattrs,
        blocks: Blocks { written, holes },
        bytes_read,
        duplicates,
    } = input;
    tree.sort()?;
    let order = post_order(&tree);
    let count = order.len() as u32;
    let mut number = vec![0u32; tree.nodes.len()];
    for (i, &node) in order.iter().enumerate() {
        number[node as usize] = i as u32 + 1;
    }
    // Every directory's parent (the root's: the count + 1, as mksquashfs stores it).
    let mut parent = vec![count + 1; tree.nodes.len()];
    for &node in &order {
        if let Body::Dir(entries) = &tree.nodes[node as usize].body {
            for e in entries {
                if let Body::Dir(_) = tree.nodes[e.node as usize].body {
                    parent[e.node as usize] = number[node as usize];
                }
            }
        }
    }

    let mut inodes = MetaWriter::new(encoding.compressor()?);
    let mut dirs = MetaWriter::new(encoding.compressor()?);
    let mut refs = vec![MetaRef::from_packed(0); tree.nodes.len()];
    let no_blocks = Placed::default();
    let no_holes = HoleRuns::default();
    let (mut raw, mut index) = (Vec::new(), Vec::new());
    for &node in &order {
        let n = &tree.nodes[node as usize];
        let mut nlink = n.names;
        // A file's block list, written after its inode's other fields (it ends the inode).
        let mut block_list = None;
        let body = match &n.body {
            Body::Dir(entries) => {
                let mut listing = ListingWriter::default();
                let mut subdirs = 0u32;
                for e in entries {
                    let kind = tree.nodes[e.node as usize].body.kind();
                    if let Body::Dir(_) = tree.nodes[e.node as usize].body {
                        subdirs += 1;
                    }
                    listing.add(
                        &e.name,
                        refs[e.node as usize],
                        number[e.node as usize],
                        kind,
                    );
                }
                nlink = subdirs.saturating_add(2);
                let bytes = listing.finish();
                let size = u32::try_from(bytes.len() + 3)
                    .map_err(|_| WriteError::Options("a directory listing past 4 GiB".into()))?;
                let start = dirs.stream_len();
                let at = dirs.position();
                dirs.write(&bytes)?;
                // The index only speeds lookups up: past 65535 points (a 512 MiB listing),
                // the rest is found by reading on from the last one.
                index.clear();
                let points = &listing.index[..listing.index.len().min(usize::from(u16::MAX))];
                for (offset, name) in points {
                    let block = dirs.reference(start + u64::from(*offset)).block;
                    encode_index_entry(&mut index, *offset, block as u32, name);
                }
                NewBody::Directory {
                    listing: at,
                    size,
                    parent: parent[node as usize],
                    index: &index,
                    index_count: points.len() as u16,
                }
            }
            Body::File(stored) => {
                let placed = stored
                    .blocks
                    .and_then(|id| written.files.get(id))
                    .unwrap_or(&no_blocks);
                let holes = stored
                    .blocks
                    .and_then(|id| holes.get(&id))
                    .unwrap_or(&no_holes);
                block_list = Some((&placed.words, holes));
                NewBody::File {
                    blocks_start: placed.start,
                    size: stored.size,
                    sparse: stored.sparse,
                    fragment: stored.fragment,
                    blocks: &[],
                }
            }
            Body::Symlink(target) => NewBody::Symlink(target),
            Body::Device(kind, dev) => NewBody::Device(*kind, *dev),
            Body::Ipc(kind) => NewBody::Ipc(*kind),
        };
        let inode = NewInode {
            permissions: n.attrs.permissions,
            uid_index: n.attrs.uid,
            gid_index: n.attrs.gid,
            mtime: n.attrs.mtime,
            number: number[node as usize],
            nlink,
            xattr: n.attrs.xattr,
            body,
        };
        refs[node as usize] = inodes.position();
        raw.clear();
        inode.encode(&mut raw);
        inodes.write(&raw)?;
        if let Some((words, holes)) = block_list {
            blocklist::write(&mut inodes, words, holes)?;
        }
    }
    let root = refs[0];

    let mut pos = written.end;
    let inode_table_start = pos;
    pos = put(out, pos, &inodes.finish()?)?;
    let directory_table_start = pos;
    pos = put(out, pos, &dirs.finish()?)?;

    let lookup_table = |entries: &[u8], header: &[u8], pos: &mut u64| -> WriteResult<u64> {
        let (bytes, start) = encode_lookup_table(entries, *pos, header, encoding.compressor()?)?;
        *pos = put(out, *pos, &bytes)?;
        Ok(start)
    };
    let fragment_count = written.fragments.len() as u32;
    let fragment_table_start = if fragment_count == 0 {
        NO_TABLE
    } else {
        let mut entries = Vec::new();
        for f in &written.fragments {
            FragmentTable::encode_entry(&mut entries, *f);
        }
        lookup_table(&entries, &[], &mut pos)?
    };
    let export_table_start = if options.exportable {
        let mut entries = Vec::with_capacity(order.len() * 8);
        for &node in &order {
            ExportTable::encode_entry(&mut entries, refs[node as usize]);
        }
        lookup_table(&entries, &[], &mut pos)?
    } else {
        NO_TABLE
    };
    let id_table_start = lookup_table(&owners.entries(), &[], &mut pos)?;
    let xattr_sets = xattrs.count();
    let xattr_id_table_start = if xattr_sets == 0 {
        NO_TABLE
    } else {
        let (kv, ids) = xattrs.finish()?;
        let kv_start = pos;
        pos = put(out, pos, &kv)?;
        lookup_table(&ids, &encode_table_header(kv_start, xattr_sets), &mut pos)?
    };
    let bytes_used = pos;

    let options_block = encoding.options();
    let mut sb_flags = 0;
    for (on, flag) in [
        (options.fragments == Fragments::Never, flags::NO_FRAGMENTS),
        (
            options.fragments == Fragments::Always,
            flags::ALWAYS_FRAGMENTS,
        ),
        (options.duplicates, flags::DUPLICATES),
        (options.exportable, flags::EXPORTABLE),
        (xattr_sets == 0, flags::NO_XATTRS),
        (options_block.is_some(), flags::COMPRESSOR_OPTIONS),
    ] {
        if on {
            sb_flags |= flag;
        }
    }
    let block_size = encoding.block_size;
    let sb = Superblock {
        inode_count: count,
        mkfs_time: options.mkfs_time,
        block_size,
        block_log: block_size.trailing_zeros() as u16,
        fragment_count,
        compression: encoding.codec,
        flags: sb_flags,
        id_count: owners.count(),
        root_inode: root.packed(),
        bytes_used,
        id_table_start,
        xattr_id_table_start,
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        export_table_start,
    };
    put(out, 0, &sb.encode())?;
    if let Some(block) = options_block {
        // Stored as it is, behind a metadata header.
        let header = MetadataHeader {
            stored: block.len() as u16,
            compressed: false,
        };
        let mut bytes = header.word().to_le_bytes().to_vec();
        bytes.extend(block);
        put(out, SUPERBLOCK_SIZE as u64, &bytes)?;
    }
    // What lies past the end (blocks of a duplicate written last, then taken back) goes,
    // and the padding is zeros.
    let file_len = bytes_used.div_ceil(PAD) * PAD;
    out.set_len(bytes_used).map_err(WriteError::Output)?;
    out.set_len(file_len).map_err(WriteError::Output)?;
    Ok(WriteSummary {
        bytes_used,
        file_len,
        inodes: count,
        bytes_read,
        duplicates,
        fragments: fragment_count,
        ids: owners.count(),
        xattr_sets,
    })
}
