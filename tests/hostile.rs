//! Hostile variants of real images for the mount tests: damage aimed at the structures a
//! mount reads (the tables the superblock points at), plus targeted corruptions made with
//! the library's own view of an image with uncompressed metadata (`-noI`): a directory
//! whose listing is the root's (so it contains its own ancestor), a fragment offset past its
//! block, a block size word with high bits set.

use std::path::Path;

use sqfs::internals::{self, InodeBody};
use sqfs::{Archive, Inode};

/// A small deterministic generator (xorshift64*), so a failing variant can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

fn le64(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

/// The byte ranges of the tables the superblock points at, in image order.
pub fn table_regions(image: &[u8]) -> Vec<(&'static str, usize, usize)> {
    let len = image.len();
    let end = (le64(image, 40) as usize).min(len);
    let mut starts: Vec<(&'static str, usize)> = [
        ("ids", 48),
        ("xattrs", 56),
        ("inodes", 64),
        ("directories", 72),
        ("fragments", 80),
        ("exports", 88),
    ]
    .iter()
    .map(|&(name, at)| (name, le64(image, at)))
    .filter(|&(_, start)| start != u64::MAX && (start as usize) < end)
    .map(|(name, start)| (name, start as usize))
    .collect();
    starts.sort_by_key(|&(_, s)| s);
    (0..starts.len())
        .map(|i| {
            let stop = starts.get(i + 1).map_or(end, |&(_, s)| s);
            (starts[i].0, starts[i].1, stop.max(starts[i].1 + 1).min(len))
        })
        .collect()
}

/// `count` damaged variants of `image`: bit flips inside a table, random superblock field
/// values, truncation at a table boundary (and just around it), zeroed or 0xFF ranges.
pub fn variants(image: &[u8], seed: u64, count: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed | 1);
    let regions = table_regions(image);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (name, start, stop) = regions[rng.below(regions.len())];
        let mut v = image.to_vec();
        let label = match i % 4 {
            0 => {
                for _ in 0..1 + rng.below(3) {
                    let at = start + rng.below(stop - start);
                    v[at] ^= 1 << rng.below(8);
                }
                format!("flip-in-{name}")
            }
            1 => {
                let field = 4 + 4 * rng.below(23);
                let value = match rng.below(4) {
                    0 => 0,
                    1 => u32::MAX,
                    2 => rng.next_u64() as u32,
                    _ => (rng.next_u64() as u32) % (image.len() as u32 * 2),
                };
                v[field..field + 4].copy_from_slice(&value.to_le_bytes());
                format!("superblock-{field}={value:#x}")
            }
            2 => {
                let cut = (start + rng.below(3)).saturating_sub(1).min(image.len());
                v.truncate(cut);
                format!("truncated-at-{name}{:+}", cut as i64 - start as i64)
            }
            _ => {
                let at = start + rng.below(stop - start);
                let n = (1 + rng.below(256)).min(image.len() - at);
                v[at..at + n].fill(if i % 8 == 3 { 0 } else { 0xFF });
                format!("filled-in-{name}-{n}")
            }
        };
        out.push((format!("{label}#{i}"), v));
    }
    out
}

/// Where an inode's bytes are in an image whose inode table is stored uncompressed.
fn inode_pos(archive: &Archive, inode: &Inode) -> usize {
    let sb = archive.superblock();
    // Each uncompressed metadata block has a 2-byte length header.
    (sb.inode_table_start + inode.reference().block + 2 + u64::from(inode.reference().offset))
        as usize
}

/// Every inode of the image, by walking it (bounded).
fn all_inodes(archive: &Archive) -> Vec<Inode> {
    let mut out = Vec::new();
    let mut stack = vec![archive.root().unwrap()];
    while let Some(dir) = stack.pop() {
        out.push(dir.clone());
        for entry in archive.read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let inode = archive.entry_inode(&entry).unwrap();
            if inode.is_dir() {
                stack.push(inode);
            } else {
                out.push(inode);
            }
        }
    }
    out
}

/// The targeted corruptions, for an image built with `-noI` (uncompressed inodes). Each
/// only touches inodes that lie wholly inside their metadata block.
pub fn targeted_variants(path: &Path) -> Vec<(String, Vec<u8>)> {
    let image = std::fs::read(path).unwrap();
    let archive = Archive::open(path).unwrap();
    let inodes = all_inodes(&archive);
    let fits = |i: &Inode| u64::from(i.reference().offset) + 64 <= 8192;
    let mut out = Vec::new();
    let root = archive.root().unwrap();
    let root_at = inode_pos(&archive, &root);
    for sub in inodes
        .iter()
        .filter(|i| i.is_dir() && !internals::is_extended(i) && fits(i))
    {
        if sub.reference() == root.reference() || internals::is_extended(&root) {
            continue;
        }
        // Basic directory inode: start_block at 16, file_size at 24, offset at 26.
        let at = inode_pos(&archive, sub);
        let mut v = image.clone();
        v[at + 16..at + 20].copy_from_slice(&image[root_at + 16..root_at + 20]);
        v[at + 24..at + 28].copy_from_slice(&image[root_at + 24..root_at + 28]);
        out.push((format!("dir-{}-lists-the-root", sub.number()), v));
    }
    for file in inodes
        .iter()
        .filter(|i| fits(i) && !internals::is_extended(i))
    {
        let InodeBody::File(f) = internals::body(file) else {
            continue;
        };
        let at = inode_pos(&archive, file);
        if f.fragment.is_some() {
            // Basic file inode: fragment index at 20, offset in the fragment at 24.
            let mut v = image.clone();
            v[at + 24..at + 28]
                .copy_from_slice(&(archive.superblock().block_size - 1).to_le_bytes());
            out.push((format!("file-{}-fragment-past-its-block", file.number()), v));
            let mut v = image.clone();
            v[at + 20..at + 24].copy_from_slice(&u32::MAX.wrapping_sub(1).to_le_bytes());
            out.push((
                format!("file-{}-fragment-index-out-of-range", file.number()),
                v,
            ));
        }
        if f.block_count > 0 {
            // The first block size word follows the 32-byte basic file inode.
            for bits in [1u32 << 25, 1 << 31, 0xFF00_0000] {
                let mut v = image.clone();
                let word = u32::from_le_bytes(v[at + 32..at + 36].try_into().unwrap()) | bits;
                v[at + 32..at + 36].copy_from_slice(&word.to_le_bytes());
                out.push((format!("file-{}-block-word-{bits:#x}", file.number()), v));
            }
        }
    }
    out
}

/// The image at `path`, patched so that its root cannot be served: `what` is "owners" (the
/// id table's first block header says 0 bytes, so no `stat` could resolve the root's uid)
/// or "listing" (the header of the block holding the root's listing says 0 bytes).
pub fn unservable_root(path: &Path, what: &str) -> Vec<u8> {
    let mut image = std::fs::read(path).unwrap();
    let block = match what {
        "owners" => le64(&image, le64(&image, 48) as usize),
        "listing" => {
            let archive = Archive::open(path).unwrap();
            let root = archive.root().unwrap();
            let InodeBody::Directory(info) = internals::body(&root) else {
                panic!("the root is a directory")
            };
            le64(&image, 72) + info.listing.block
        }
        _ => panic!("no such damage: {what}"),
    } as usize;
    image[block..block + 2].copy_from_slice(&0x8000u16.to_le_bytes());
    image
}
