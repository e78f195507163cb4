//! The `pack` target: any bytes as a small tree, packed by `sqfs::Writer` and read back
//! by `Archive`, which must show exactly that tree. The bytes are a program: a header
//! choosing the writer's options, then operations (add a directory, a file, a symlink, a
//! device, a hard link; take an entry out) whose parameters come from the next bytes;
//! every program is valid (indices pick among what exists, names are made storable), so
//! the fuzzer explores the writer, not a parser of its own.
//!
//! A finding is a write that fails, an image that does not open or walk, or any field
//! that differs from the tree: kind, mode, owners, time, size, content, link target,
//! device number, xattrs, link counts, which names are one inode, an inode's number
//! through the export table.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use sqfs::{
    Archive, Compression, Content, Fragments, Inode, Meta, NodeId, OpenOptions, Special,
    WriteOptions, Writer, Xattr,
};

use super::memfile;

/// Operations per input, at most: a tree small enough to write and check in milliseconds.
const MAX_OPS: usize = 48;

/// The input, read a byte at a time; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }

    /// A name: 1-8 bytes of the input (`/` and NUL made other bytes), or 256.
    fn name(&mut self) -> Vec<u8> {
        let len = self.u8();
        let mut name: Vec<u8> = if len == 0xff {
            vec![b'L'; 256]
        } else {
            (0..=len % 8)
                .map(|_| match self.u8() {
                    b'/' => b'_',
                    0 => b'0',
                    b => b,
                })
                .collect()
        };
        if name == b"." || name == b".." {
            name.push(b'x');
        }
        name
    }

    fn meta(&mut self) -> Meta {
        let flags = self.u8();
        let mut xattrs: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for _ in 0..flags % 4 {
            let prefix: &[u8] = match self.u8() % 3 {
                0 => b"user.",
                1 => b"trusted.",
                _ => b"security.",
            };
            let mut name = prefix.to_vec();
            name.extend(self.name());
            name.truncate(255); // XATTR_NAME_MAX
            let value = match self.u8() {
                // A value many entries share: stored out of line after the first.
                0..=63 => b"the shared value".to_vec(),
                n => (0..n % 48).map(|_| self.u8()).collect(),
            };
            xattrs.insert(name, value);
        }
        let id = |b: &mut Self| match b.u8() % 4 {
            0 => 0,
            1 => 1000,
            2 => u32::MAX - 1,
            _ => b.u32(),
        };
        Meta {
            permissions: u16::from_le_bytes([self.u8(), self.u8()]) & 0o7777,
            uid: id(self),
            gid: id(self),
            mtime: if flags & 0x80 != 0 { self.u32() } else { 0 },
            xattrs: xattrs
                .into_iter()
                .map(|(name, value)| Xattr { name, value })
                .collect(),
        }
    }

    /// A file's content: runs of input bytes, noise, zeros (holes) and one repeated byte,
    /// in lengths around the block size.
    fn content(&mut self, bs: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..self.u8() % 4 {
            let kind = self.u8();
            let len = match kind >> 4 {
                0 => 0,
                1 => 1,
                2 => bs - 1,
                3 => bs,
                4 => bs + 1,
                5 => 2 * bs,
                6 => 2 * bs + 1,
                _ => usize::from(self.u8()) * 64 + usize::from(self.u8()),
            };
            match kind % 4 {
                0 => out.resize(out.len() + len, 0),
                1 => {
                    let b = self.u8();
                    out.resize(out.len() + len, b);
                }
                2 => {
                    let mut x = u64::from(self.u32()) | 1;
                    out.extend((0..len).map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    }));
                }
                _ => out.extend((0..len.min(64)).map(|_| self.u8())),
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Body {
    Dir(BTreeMap<Vec<u8>, usize>),
    File(Vec<u8>),
    Symlink(Vec<u8>),
    /// The mode's type bits and the device number.
    Special(u32, u64),
}

struct Node {
    id: NodeId,
    meta: Meta,
    body: Body,
}

/// The tree as written; node 0 is the root.
struct Tree {
    nodes: Vec<Node>,
    contents: Vec<Vec<u8>>,
}

/// What a walk from the root reaches: directories, other nodes (each once), names.
struct Live {
    dirs: Vec<usize>,
    leaves: Vec<usize>,
    names: Vec<(usize, Vec<u8>)>,
}

impl Tree {
    fn live(&self) -> Live {
        let mut live = Live {
            dirs: vec![0],
            leaves: Vec::new(),
            names: Vec::new(),
        };
        let mut i = 0;
        while i < live.dirs.len() {
            if let Body::Dir(entries) = &self.nodes[live.dirs[i]].body {
                for (name, &child) in entries {
                    live.names.push((live.dirs[i], name.clone()));
                    match self.nodes[child].body {
                        Body::Dir(_) => live.dirs.push(child),
                        _ if !live.leaves.contains(&child) => live.leaves.push(child),
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        live
    }

    fn entries(&mut self, dir: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match &mut self.nodes[dir].body {
            Body::Dir(entries) => entries,
            _ => unreachable!("a live directory"),
        }
    }

    /// One operation from `b`, on the tree and on `w`.
    fn op(&mut self, b: &mut Bytes, w: &mut Writer, bs: usize) {
        let live = self.live();
        let code = b.u8();
        if code % 8 == 7 {
            if let Some((dir, name)) = live
                .names
                .get(usize::from(b.u8()) % live.names.len().max(1))
            {
                w.remove(self.nodes[*dir].id, name).expect("remove");
                self.entries(*dir).remove(name);
            }
            return;
        }
        let parent = live.dirs[usize::from(b.u8()) % live.dirs.len()];
        let name = b.name();
        let pid = self.nodes[parent].id;
        if self.entries(parent).remove(&name).is_some() {
            w.remove(pid, &name).expect("remove before replacing");
        }
        if code % 8 == 6 {
            let Some(&target) = live
                .leaves
                .get(usize::from(b.u8()) % live.leaves.len().max(1))
            else {
                return;
            };
            w.link(pid, &name, self.nodes[target].id).expect("link");
            self.entries(parent).insert(name, target);
            return;
        }
        let meta = b.meta();
        let (body, id) = match code % 8 {
            0 | 1 => (Body::Dir(BTreeMap::new()), w.dir(pid, &name, meta.clone())),
            2 | 3 => {
                let bytes = if code & 0x80 != 0 && !self.contents.is_empty() {
                    self.contents[usize::from(b.u8()) % self.contents.len()].clone()
                } else {
                    b.content(bs)
                };
                self.contents.push(bytes.clone());
                let size = bytes.len() as u64;
                let id = if code & 0x40 != 0 {
                    // From a file, its zero pages left as holes (SEEK_DATA finds them).
                    let file = memfile(&[]);
                    for (i, chunk) in bytes.chunks(4096).enumerate() {
                        if chunk.iter().any(|&x| x != 0) {
                            file.write_all_at(chunk, i as u64 * 4096).expect("memfd");
                        }
                    }
                    file.set_len(size).expect("memfd");
                    w.file(pid, &name, meta.clone(), size, Content::File(&file))
                } else {
                    let mut stream = &bytes[..];
                    w.file(pid, &name, meta.clone(), size, Content::Stream(&mut stream))
                };
                (Body::File(bytes), id)
            }
            4 => {
                let len = if code & 0x80 != 0 {
                    4095
                } else {
                    1 + usize::from(b.u8() % 32)
                };
                let target: Vec<u8> = (0..len).map(|_| b.u8().max(1)).collect();
                (
                    Body::Symlink(target.clone()),
                    w.symlink(pid, &name, meta.clone(), &target),
                )
            }
            _ => {
                let (major, minor) = (b.u32() & 0xfff, b.u32() & 0xfffff);
                let (mode, rdev, special) = match b.u8() % 4 {
                    0 => (
                        0o020000,
                        libc::makedev(major, minor),
                        Special::CharDevice { major, minor },
                    ),
                    1 => (
                        0o060000,
                        libc::makedev(major, minor),
                        Special::BlockDevice { major, minor },
                    ),
                    2 => (0o010000, 0, Special::Fifo),
                    _ => (0o140000, 0, Special::Socket),
                };
                (
                    Body::Special(mode, rdev),
                    w.special(pid, &name, meta.clone(), special),
                )
            }
        };
        self.nodes.push(Node {
            id: id.expect("add"),
            meta,
            body,
        });
        let index = self.nodes.len() - 1;
        self.entries(parent).insert(name, index);
    }
}

/// Packs the tree `data` describes and checks the image shows it.
pub fn run(data: &[u8]) {
    entries(data);
}

/// [`run`], which also says how many names the tree has (for the seeds' test).
pub fn entries(data: &[u8]) -> usize {
    let mut b = Bytes(data);
    let head = b.u8();
    let options = WriteOptions {
        compression: [
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
            Compression::Lz4,
            Compression::Lzo,
        ][usize::from(head % 5)],
        block_size: if head & 0x08 != 0 { 8192 } else { 4096 },
        threads: 1 + usize::from(head >> 7),
        fragments: [Fragments::SmallFiles, Fragments::Never, Fragments::Always]
            [usize::from(b.u8() % 3)],
        duplicates: head & 0x10 == 0,
        exportable: head & 0x20 == 0,
        mkfs_time: 1_700_000_000,
        ..WriteOptions::default()
    };
    let bs = options.block_size as usize;
    let out = memfile(&[]);
    let root = b.meta();
    let mut w =
        Writer::create(out.try_clone().expect("dup"), &options, root.clone()).expect("create");
    let mut tree = Tree {
        nodes: vec![Node {
            id: w.root(),
            meta: root,
            body: Body::Dir(BTreeMap::new()),
        }],
        contents: Vec::new(),
    };
    for _ in 0..MAX_OPS {
        if b.done() {
            break;
        }
        tree.op(&mut b, &mut w, bs);
    }
    let summary = w.finish().expect("finish");
    let live = tree.live();
    assert_eq!(summary.inodes as usize, live.dirs.len() + live.leaves.len());
    check(&tree, &live, out, options.exportable);
    live.names.len()
}

/// Walks the image in `out` and compares every entry with `tree`.
fn check(tree: &Tree, live: &Live, out: File, exportable: bool) {
    let archive = Archive::open_file(out, &OpenOptions::default()).expect("the image opens");
    assert_eq!(archive.has_export_table(), exportable);
    let mut names: BTreeMap<usize, u32> = BTreeMap::new();
    for (dir, name) in &live.names {
        if let Body::Dir(entries) = &tree.nodes[*dir].body {
            *names.entry(entries[name]).or_default() += 1;
        }
    }
    // The inode number each node was found with: one per node, never shared.
    let mut numbers: BTreeMap<usize, u32> = BTreeMap::new();
    let mut stack = vec![(0usize, archive.root().expect("root"))];
    while let Some((i, inode)) = stack.pop() {
        let node = &tree.nodes[i];
        let attr = archive.attr(&inode).expect("attr");
        if let Some(&n) = numbers.get(&i) {
            assert_eq!(n, attr.ino, "one node, two inode numbers");
        }
        numbers.insert(i, attr.ino);
        let m = &node.meta;
        assert_eq!(attr.mode & 0o7777, u32::from(m.permissions), "permissions");
        assert_eq!(
            (attr.uid, attr.gid, attr.mtime),
            (m.uid, m.gid, m.mtime),
            "owners, time"
        );
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = archive
            .xattrs(&inode)
            .expect("xattrs")
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        xattrs.sort();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = m
            .xattrs
            .iter()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        assert_eq!(xattrs, expected, "xattrs");
        if exportable {
            let again = archive.inode_by_number(attr.ino).expect("export table");
            assert_eq!(again.reference(), inode.reference(), "export table");
        }
        match &node.body {
            Body::Dir(entries) => {
                assert_eq!(attr.mode & 0o170000, 0o040000);
                let subdirs = entries
                    .values()
                    .filter(|&&c| matches!(tree.nodes[c].body, Body::Dir(_)))
                    .count();
                assert_eq!(attr.nlink as usize, 2 + subdirs, "directory link count");
                let listed: Vec<(Vec<u8>, Inode)> = archive
                    .read_dir(&inode)
                    .expect("listing")
                    .map(|e| {
                        let e = e.expect("entry");
                        let child = archive.entry_inode(&e).expect("entry's inode");
                        (e.name.to_vec(), child)
                    })
                    .collect();
                let expected: Vec<&Vec<u8>> = entries.keys().collect();
                let got: Vec<&Vec<u8>> = listed.iter().map(|(n, _)| n).collect();
                assert_eq!(got, expected, "names");
                for ((_, child), (_, &c)) in listed.into_iter().zip(entries) {
                    stack.push((c, child));
                }
            }
            Body::File(bytes) => {
                assert_eq!(attr.mode & 0o170000, 0o100000);
                assert_eq!(attr.nlink, names[&i], "link count");
                assert_eq!(attr.size, bytes.len() as u64);
                let read = archive.read_file(&inode, 1 << 20).expect("content");
                assert!(read == *bytes, "content");
            }
            Body::Symlink(target) => {
                assert_eq!(attr.mode & 0o170000, 0o120000);
                assert_eq!(attr.nlink, names[&i], "link count");
                assert_eq!(archive.read_link(&inode).expect("target"), &target[..]);
            }
            Body::Special(mode, rdev) => {
                assert_eq!((attr.mode & 0o170000, attr.rdev), (*mode, *rdev));
                assert_eq!(attr.nlink, names[&i], "link count");
            }
        }
    }
    let distinct: std::collections::BTreeSet<u32> = numbers.values().copied().collect();
    assert_eq!(distinct.len(), numbers.len(), "two nodes, one inode number");
}

/// Seeds: programs that add each kind of entry, replace and remove, with each codec.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("empty".to_string(), Vec::new())];
    // head (codec, block size, threads...), fragments byte, the root's meta (flags 0:
    // no xattrs; permissions; two owners).
    let program: Vec<u8> = [
        // a directory "d" (flags 1: one user. xattr "a" with the shared value)
        &[0, 0, 0, b'd', 1, 0, 0, b'a', 0, 0xed, 0x01, 1, 1][..],
        // a file "f" in the root: a block and one more byte of noise
        &[2, 0, 0, b'f', 0, 0xa4, 0x01, 0, 0, 1, 0x42, 1, 2, 3, 4],
        // a file "z" in "d", of zeros (a hole), from a file
        &[0x42, 1, 0, b'z', 0, 0xa4, 0x01, 0, 0, 1, 0x50],
        // a symlink "s" to "f"
        &[4, 0, 0, b's', 0, 0xff, 0x01, 0, 0, 0, b'f'],
        // a char device "c" 1:3
        &[
            5, 1, 0, b'c', 0, 0xb6, 0x01, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0,
        ],
        // a hard link "h" in the root to the first leaf
        &[6, 0, 0, b'h', 0],
        // "f" again: a duplicate of the first file's content
        &[0x82, 0, 0, b'f', 0, 0xa4, 0x01, 0, 0, 0],
        // take an entry out
        &[7, 1],
    ]
    .concat();
    for codec in 0..5u8 {
        let mut seed = vec![codec | 0x08, 2, 0, 0, 0, 0, 0];
        seed.extend_from_slice(&program);
        out.push((format!("program-{codec}"), seed));
    }
    out
}
