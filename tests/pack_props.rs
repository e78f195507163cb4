//! Property tests of the writer: random trees (files of random sizes around the block
//! size, holes, duplicate contents, hard links, symlinks, devices, deep directories,
//! xattrs, names of any bytes but `/` and NUL, entries replaced and removed) are packed
//! through `sqfs::Writer` with random options and read back by the `sqfs` reader field by
//! field, and a few of them through the kernel's loop mount.
//!
//! A case is a program of operations interpreted twice in step: once on a model of the
//! tree (what the image must show), once on the writer. Indices in the operations pick
//! among what exists when they run, so every program is valid and shrinks well.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use e2e_tests::skip::{needs, Need};
use e2e_tests::snapshot::{compare, digest, from_archive, from_dir, Ignore, Node};
use e2e_tests::sys::LoopMount;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sqfs::{
    Archive, Compression, Content, Fragments, Meta, NodeId, Special, WriteOptions, Writer, Xattr,
};

#[derive(Debug, Clone)]
struct MetaSpec {
    permissions: u16,
    uid: u32,
    gid: u32,
    mtime: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MetaSpec {
    fn meta(&self) -> Meta {
        Meta {
            permissions: self.permissions,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs: self
                .xattrs
                .iter()
                .map(|(name, value)| Xattr {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// A piece of a file's content.
#[derive(Debug, Clone)]
enum Seg {
    /// Bytes that do not compress.
    Noise(u64, usize),
    /// Zeros: a hole where they cover a block (written as a hole in a source file).
    Zeros(usize),
    /// One byte repeated: compresses to little.
    Fill(u8, usize),
}

#[derive(Debug, Clone)]
enum ContentSpec {
    Segs(Vec<Seg>),
    /// The same bytes as an earlier file (by index among the files added so far).
    SameAs(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Dir(usize, Vec<u8>, MetaSpec),
    /// Parent, name, meta, content, read from a (sparse) file rather than a stream.
    File(usize, Vec<u8>, MetaSpec, ContentSpec, bool),
    Symlink(usize, Vec<u8>, MetaSpec, Vec<u8>),
    /// Parent, name, meta, kind (0 char, 1 block, 2 FIFO, 3 socket), major, minor.
    Special(usize, Vec<u8>, MetaSpec, u8, u32, u32),
    /// Parent, name, which existing non-directory.
    Link(usize, Vec<u8>, usize),
    /// Which existing entry to take out.
    Remove(usize),
}

#[derive(Debug, Clone)]
struct Case {
    compression: Compression,
    block_size: u32,
    threads: usize,
    fragments: Fragments,
    duplicates: bool,
    exportable: bool,
    root: MetaSpec,
    ops: Vec<Op>,
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    let byte = any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0);
    prop_oneof![
        // A small alphabet: names meet again (an entry replaced).
        4 => prop::collection::vec(prop::sample::select(b"ab".to_vec()), 1..=2),
        4 => prop::collection::vec(byte.clone(), 1..=12),
        1 => prop::collection::vec(byte, 250..=256),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn xattrs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let prefix = prop::sample::select(vec![&b"user."[..], b"trusted.", b"security.t"]);
    let suffix = prop::collection::vec(1u8..=255, 1..=12);
    let value = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..=40),
        1 => prop::collection::vec(any::<u8>(), 64..=300),
        // The same value on many entries: stored once, out of line.
        2 => Just(b"a value seen before".to_vec()),
    ];
    prop::collection::vec((prefix, suffix, value), 0..=3).prop_map(|list| {
        let mut by_name = BTreeMap::new();
        for (prefix, suffix, value) in list {
            by_name.insert([prefix, &suffix[..]].concat(), value);
        }
        by_name.into_iter().collect()
    })
}

fn meta() -> impl Strategy<Value = MetaSpec> {
    let id = prop_oneof![
        Just(0u32),
        Just(1000),
        Just(65534),
        Just(u32::MAX - 1),
        any::<u32>()
    ];
    (any::<u16>(), id.clone(), id, any::<u32>(), xattrs()).prop_map(
        |(p, uid, gid, mtime, xattrs)| MetaSpec {
            permissions: p & 0o7777,
            uid,
            gid,
            mtime,
            xattrs,
        },
    )
}

/// Lengths around the block size, where the writer's cases change.
fn length(bs: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(bs - 1),
        Just(bs),
        Just(bs + 1),
        Just(2 * bs),
        Just(2 * bs + 1),
        0..3 * bs,
    ]
}

fn content(bs: usize) -> impl Strategy<Value = ContentSpec> {
    let seg = prop_oneof![
        (any::<u64>(), length(bs)).prop_map(|(s, n)| Seg::Noise(s, n)),
        length(bs).prop_map(Seg::Zeros),
        (any::<u8>(), length(bs)).prop_map(|(b, n)| Seg::Fill(b, n)),
    ];
    prop_oneof![
        4 => prop::collection::vec(seg, 0..=3).prop_map(ContentSpec::Segs),
        1 => any::<usize>().prop_map(ContentSpec::SameAs),
    ]
}

fn op(bs: usize) -> impl Strategy<Value = Op> {
    let target = prop_oneof![
        4 => prop::collection::vec(1u8..=255, 1..=40),
        1 => prop::collection::vec(1u8..=255, 4096..=4096),
    ];
    prop_oneof![
        3 => (any::<usize>(), name(), meta()).prop_map(|(p, n, m)| Op::Dir(p, n, m)),
        5 => (any::<usize>(), name(), meta(), content(bs), any::<bool>())
            .prop_map(|(p, n, m, c, f)| Op::File(p, n, m, c, f)),
        1 => (any::<usize>(), name(), meta(), target).prop_map(|(p, n, m, t)| Op::Symlink(p, n, m, t)),
        1 => (any::<usize>(), name(), meta(), 0u8..4, 0u32..=0xfff, 0u32..=0xfffff)
            .prop_map(|(p, n, m, k, ma, mi)| Op::Special(p, n, m, k, ma, mi)),
        2 => (any::<usize>(), name(), any::<usize>()).prop_map(|(p, n, t)| Op::Link(p, n, t)),
        1 => any::<usize>().prop_map(Op::Remove),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let codec = prop::sample::select(vec![
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Lzo,
    ]);
    let fragments = prop::sample::select(vec![
        Fragments::Never,
        Fragments::SmallFiles,
        Fragments::Always,
    ]);
    (
        codec,
        prop::sample::select(vec![4096u32, 8192]),
        1usize..=3,
        fragments,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(
            |(compression, block_size, threads, fragments, duplicates, exportable)| {
                (
                    meta(),
                    prop::collection::vec(op(block_size as usize), 0..64),
                )
                    .prop_map(move |(root, ops)| Case {
                        compression,
                        block_size,
                        threads,
                        fragments,
                        duplicates,
                        exportable,
                        root,
                        ops,
                    })
            },
        )
}

/// What an inode of the model is.
#[derive(Debug, Clone)]
enum Body {
    Dir(BTreeMap<Vec<u8>, usize>),
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Special(u8, u32, u32),
}

#[derive(Debug, Clone)]
struct Inode {
    node: NodeId,
    meta: MetaSpec,
    body: Body,
}

/// The inodes a walk from the root reaches: directories, other inodes (each once), and
/// every (directory, name).
struct Live {
    dirs: Vec<usize>,
    leaves: Vec<usize>,
    names: Vec<(usize, Vec<u8>)>,
}

/// The tree the image must show; inode 0 is the root.
struct Model {
    inodes: Vec<Inode>,
    /// Every file content added, for `SameAs`.
    contents: Vec<Vec<u8>>,
}

fn bytes_of(segs: &[Seg]) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in segs {
        match *seg {
            Seg::Noise(seed, n) => {
                let mut x = seed | 1;
                out.extend((0..n).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }));
            }
            Seg::Zeros(n) => out.resize(out.len() + n, 0),
            Seg::Fill(b, n) => out.resize(out.len() + n, b),
        }
    }
    out
}

/// `bytes` in a file of `dir`, zeros (in runs of 4 KiB or more) left as holes.
fn sparse_file(dir: &Path, bytes: &[u8]) -> File {
    let path = dir.join("content");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            file.write_all_at(chunk, (i * 4096) as u64).unwrap();
        }
    }
    file.set_len(bytes.len() as u64).unwrap();
    file
}

impl Model {
    /// What a walk from the root reaches now.
    fn live(&self) -> Live {
        let (mut dirs, mut leaves, mut names) = (vec![0], Vec::new(), Vec::new());
        let mut i = 0;
        while i < dirs.len() {
            let dir = dirs[i];
            if let Body::Dir(entries) = &self.inodes[dir].body {
                for (name, &child) in entries {
                    names.push((dir, name.clone()));
                    match self.inodes[child].body {
                        Body::Dir(_) => dirs.push(child),
                        _ if !leaves.contains(&child) => leaves.push(child),
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        Live {
            dirs,
            leaves,
            names,
        }
    }

    fn entries(&mut self, dir: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match &mut self.inodes[dir].body {
            Body::Dir(entries) => entries,
            _ => unreachable!("a live directory"),
        }
    }

    /// Runs `ops` on the model and on `writer`.
    fn run(&mut self, writer: &mut Writer, ops: &[Op], scratch: &Path) {
        for op in ops {
            let Live {
                dirs,
                leaves,
                names,
            } = self.live();
            let (parent, name) = match op {
                Op::Remove(which) => {
                    if names.is_empty() {
                        continue;
                    }
                    let (dir, name) = &names[which % names.len()];
                    writer.remove(self.inodes[*dir].node, name).unwrap();
                    self.entries(*dir).remove(name);
                    continue;
                }
                Op::Dir(p, n, _)
                | Op::File(p, n, ..)
                | Op::Symlink(p, n, ..)
                | Op::Special(p, n, ..)
                | Op::Link(p, n, _) => (dirs[p % dirs.len()], n),
            };
            if let Op::Link(_, _, _) = op {
                if leaves.is_empty() {
                    continue;
                }
            }
            let parent_node = self.inodes[parent].node;
            // A name given again replaces the entry (as a later tar member does).
            if self.entries(parent).remove(name).is_some() {
                writer.remove(parent_node, name).unwrap();
            }
            let (meta, body, node) = match op {
                Op::Remove(_) => unreachable!(),
                Op::Link(_, _, target) => {
                    let target = leaves[target % leaves.len()];
                    writer
                        .link(parent_node, name, self.inodes[target].node)
                        .unwrap();
                    self.entries(parent).insert(name.clone(), target);
                    continue;
                }
                Op::Dir(_, _, m) => (
                    m,
                    Body::Dir(BTreeMap::new()),
                    writer.dir(parent_node, name, m.meta()),
                ),
                Op::File(_, _, m, content, from_file) => {
                    let bytes = match content {
                        ContentSpec::Segs(segs) => bytes_of(segs),
                        ContentSpec::SameAs(_) if self.contents.is_empty() => Vec::new(),
                        ContentSpec::SameAs(k) => self.contents[k % self.contents.len()].clone(),
                    };
                    self.contents.push(bytes.clone());
                    let size = bytes.len() as u64;
                    let node = if *from_file {
                        let file = sparse_file(scratch, &bytes);
                        writer.file(parent_node, name, m.meta(), size, Content::File(&file))
                    } else {
                        let mut stream = &bytes[..];
                        writer.file(
                            parent_node,
                            name,
                            m.meta(),
                            size,
                            Content::Stream(&mut stream),
                        )
                    };
                    (m, Body::File(bytes), node)
                }
                Op::Symlink(_, _, m, target) => (
                    m,
                    Body::Symlink(target.clone()),
                    writer.symlink(parent_node, name, m.meta(), target),
                ),
                Op::Special(_, _, m, kind, major, minor) => {
                    let special = match kind {
                        0 => Special::CharDevice {
                            major: *major,
                            minor: *minor,
                        },
                        1 => Special::BlockDevice {
                            major: *major,
                            minor: *minor,
                        },
                        2 => Special::Fifo,
                        _ => Special::Socket,
                    };
                    (
                        m,
                        Body::Special(*kind, *major, *minor),
                        writer.special(parent_node, name, m.meta(), special),
                    )
                }
            };
            self.inodes.push(Inode {
                node: node.unwrap(),
                meta: meta.clone(),
                body,
            });
            let index = self.inodes.len() - 1;
            self.entries(parent).insert(name.clone(), index);
        }
    }

    /// The snapshot a walk of the image must give, in path order; inode numbers are the
    /// model's (compared as groups, not values).
    fn snapshot(&self) -> Vec<Node> {
        let mut names: BTreeMap<usize, u64> = BTreeMap::new();
        for (dir, name) in &self.live().names {
            if let Body::Dir(entries) = &self.inodes[*dir].body {
                *names.entry(entries[name]).or_default() += 1;
            }
        }
        let mut out = Vec::new();
        let mut stack = vec![(0usize, Vec::new())];
        while let Some((i, path)) = stack.pop() {
            let inode = &self.inodes[i];
            let m = &inode.meta;
            let (kind, nlink, size, rdev, target, digest_of) = match &inode.body {
                Body::Dir(entries) => {
                    for (name, &child) in entries.iter().rev() {
                        stack.push((child, [&path[..], b"/", name].concat()));
                    }
                    let subdirs = entries
                        .values()
                        .filter(|&&c| matches!(self.inodes[c].body, Body::Dir(_)))
                        .count();
                    (0o040000, 2 + subdirs as u64, 0, 0, None, None)
                }
                Body::File(bytes) => (
                    0o100000,
                    names[&i],
                    bytes.len() as u64,
                    0,
                    None,
                    Some(bytes),
                ),
                Body::Symlink(t) => (
                    0o120000,
                    names[&i],
                    t.len() as u64,
                    0,
                    Some(t.clone()),
                    None,
                ),
                Body::Special(kind, major, minor) => {
                    let (mode, rdev) = match kind {
                        0 => (0o020000, libc::makedev(*major, *minor)),
                        1 => (0o060000, libc::makedev(*major, *minor)),
                        2 => (0o010000, 0),
                        _ => (0o140000, 0),
                    };
                    (mode, names[&i], 0, rdev, None, None)
                }
            };
            out.push(Node {
                path,
                ino: i as u64,
                mode: kind | u32::from(m.permissions),
                nlink,
                uid: m.uid,
                gid: m.gid,
                size,
                mtime: i64::from(m.mtime),
                rdev,
                target,
                xattrs: m.xattrs.clone(),
                digest: digest_of.map(|b| {
                    digest(b.len() as u64, |at, buf| {
                        let at = at as usize;
                        buf.copy_from_slice(&b[at..at + buf.len()]);
                        buf.len()
                    })
                }),
            });
        }
        out
    }
}

/// A scratch directory of the test's own.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sqfs-props-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Packs `case` into `image`; the model of what it holds.
fn pack(case: &Case, image: &Path, scratch: &Path) -> Model {
    let options = WriteOptions {
        compression: case.compression,
        block_size: case.block_size,
        threads: case.threads,
        fragments: case.fragments,
        duplicates: case.duplicates,
        exportable: case.exportable,
        mkfs_time: 1_700_000_000,
        ..WriteOptions::default()
    };
    let out = File::create(image).unwrap();
    let mut writer = Writer::create(out, &options, case.root.meta()).unwrap();
    let mut model = Model {
        inodes: vec![Inode {
            node: writer.root(),
            meta: case.root.clone(),
            body: Body::Dir(BTreeMap::new()),
        }],
        contents: Vec::new(),
    };
    model.run(&mut writer, &case.ops, scratch);
    let summary = writer.finish().unwrap();
    let live = model.live();
    assert_eq!(
        summary.inodes as usize,
        live.dirs.len() + live.leaves.len(),
        "inodes written"
    );
    model
}

fn sorted(mut nodes: Vec<Node>) -> Vec<Node> {
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    for n in &mut nodes {
        n.xattrs.sort();
    }
    nodes
}

/// The groups of paths with one inode number.
fn groups(nodes: &[Node]) -> Vec<Vec<Vec<u8>>> {
    let mut by_ino: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for n in nodes {
        by_ino.entry(n.ino).or_default().push(n.path.clone());
    }
    let mut groups: Vec<_> = by_ino.into_values().collect();
    groups.sort();
    groups
}

/// Checks that `actual` shows what `expected` does: every field (directory sizes aside,
/// which are the listing's bytes), and the same names on each inode.
fn check(what: &str, expected: &[Node], actual: &[Node]) -> Result<(), TestCaseError> {
    let ignore = Ignore {
        ino: true,
        dir_size: true,
        nlink: false,
    };
    compare(expected, actual, ignore).map_err(|d| TestCaseError::fail(format!("{what}:\n{d}")))?;
    let dir_links = |nodes: &[Node]| -> Vec<u64> {
        nodes
            .iter()
            .filter(|n| n.mode & 0o170000 == 0o040000)
            .map(|n| n.nlink)
            .collect()
    };
    prop_assert_eq!(
        dir_links(expected),
        dir_links(actual),
        "{}: directory link counts",
        what
    );
    prop_assert_eq!(groups(expected), groups(actual), "{}: inodes", what);
    Ok(())
}

/// Reads the image back with the library and checks it against the model.
fn read_back(case: &Case, image: &Path, model: &Model) -> Result<(), TestCaseError> {
    let archive = Archive::open(image).map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
    let actual =
        sorted(from_archive(&archive).map_err(|e| TestCaseError::fail(format!("walk: {e}")))?);
    check("library", &sorted(model.snapshot()), &actual)?;
    prop_assert_eq!(archive.has_export_table(), case.exportable);
    if case.exportable {
        // Every inode is found again by its number.
        for n in &actual {
            let by_number = archive.inode_by_number(n.ino as u32).unwrap();
            let mut by_path = archive.root().unwrap();
            for part in n.path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
                by_path = archive.lookup(&by_path, part).unwrap();
            }
            prop_assert_eq!(by_number.reference(), by_path.reference());
        }
    }
    Ok(())
}

#[test]
fn random_trees_read_back_as_written() {
    let scratch = Scratch::new("library");
    let image = scratch.0.join("image.sqfs");
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |case| {
            let model = pack(&case, &image, &scratch.0);
            read_back(&case, &image, &model)
        })
        .unwrap();
}

/// A case as the kernel can show it: names of at most 255 bytes (NAME_MAX; the image
/// holds 256), symlink targets of at most 4095 (the kernel's readlink keeps the first
/// PAGE_SIZE - 1 bytes of a 4096-byte target the image holds, which the writer accepts),
/// and `user.` xattrs only on files and directories (the kernel answers ENODATA for them
/// on anything else, as it refuses to set them there).
fn for_kernel(mut case: Case) -> Case {
    for op in &mut case.ops {
        if let Op::Symlink(_, _, _, target) = op {
            target.truncate(4095);
        }
        match op {
            Op::Symlink(_, _, m, _) | Op::Special(_, _, m, ..) => {
                m.xattrs.retain(|(name, _)| !name.starts_with(b"user."))
            }
            _ => {}
        }
        match op {
            Op::Dir(_, n, _)
            | Op::File(_, n, ..)
            | Op::Symlink(_, n, ..)
            | Op::Special(_, n, ..)
            | Op::Link(_, n, _) => n.truncate(255),
            Op::Remove(_) => {}
        }
    }
    case
}

#[test]
fn random_trees_mount_in_the_kernel_as_written() {
    if !needs(&[Need::Root]) {
        return;
    }
    let scratch = Scratch::new("kernel");
    // A fixed seed: the same few trees every run, each mounted by the kernel.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 10,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    runner
        .run(&case().prop_map(for_kernel), |case| {
            let image = scratch.0.join("kernel.sqfs");
            let model = pack(&case, &image, &scratch.0);
            let mount = LoopMount::new(&image, 0).map_err(TestCaseError::fail)?;
            let mounted = sorted(from_dir(&mount.dir));
            drop(mount);
            std::fs::remove_file(&image).unwrap();
            check("kernel mount", &sorted(model.snapshot()), &mounted)
        })
        .unwrap();
}
