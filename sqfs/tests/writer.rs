//! The writer, read back by the reader: every kind of entry, every codec, the tables an
//! image may need (fragments, export, ids past one block, xattrs with shared values, a
//! directory index), duplicates, holes, files past 4 GiB, and the same bytes whatever the
//! thread count.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use sqfs::internals::{self, InodeBody};
use sqfs::{
    Archive, Compression, Content, FileType, Fragments, Inode, Meta, Special, WriteError,
    WriteOptions, Writer, Xattr, XattrProblem,
};

/// A fresh path in the temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sqfs-writer-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn meta(permissions: u16) -> Meta {
    Meta {
        permissions,
        uid: 1000,
        gid: 100,
        mtime: 1_600_000_000,
        xattrs: Vec::new(),
    }
}

fn xattr(name: &str, value: &[u8]) -> Xattr {
    Xattr {
        name: name.as_bytes().to_vec(),
        value: value.to_vec(),
    }
}

/// Deterministic noise: does not compress.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < len {
        out.extend(format!("line {i} of some text, {}\n", i * i % 977).bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Adds a file holding `bytes` (read as a stream).
fn add_bytes(w: &mut Writer, parent: sqfs::NodeId, name: &str, m: Meta, bytes: &[u8]) {
    let mut r = bytes;
    w.file(
        parent,
        name.as_bytes(),
        m,
        bytes.len() as u64,
        Content::Stream(&mut r),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// Writes an image with `options`, its entries added by `build`; the image's bytes.
fn pack(
    scratch: &Scratch,
    options: &WriteOptions,
    build: impl FnOnce(&mut Writer),
) -> (Vec<u8>, sqfs::WriteSummary) {
    let out = File::create(&scratch.0).unwrap();
    let mut w = Writer::create(out, options, meta(0o755)).unwrap();
    build(&mut w);
    let summary = w.finish().unwrap();
    let bytes = std::fs::read(&scratch.0).unwrap();
    assert_eq!(bytes.len() as u64, summary.file_len);
    assert_eq!(summary.file_len % 4096, 0);
    (bytes, summary)
}

fn open(scratch: &Scratch) -> Archive {
    Archive::open(&scratch.0).unwrap_or_else(|e| panic!("the image does not open: {e}"))
}

fn body(inode: &Inode) -> &InodeBody {
    internals::body(inode)
}

/// Every inode of `a`, found through the export table, is the one its entry names.
fn check_export_table(a: &Archive) {
    let count = a.superblock().inode_count;
    for number in 1..=count {
        let inode = a.inode_by_number(number).unwrap();
        assert_eq!(inode.number(), number);
    }
}

#[test]
fn every_kind_of_entry_reads_back() {
    let scratch = Scratch::new("kinds");
    let big = text(3 * 131072 + 500);
    pack(&scratch, &WriteOptions::default(), |w| {
        let root = w.root();
        let mut with_xattrs = meta(0o2750);
        with_xattrs.xattrs = vec![xattr("user.b", b"2"), xattr("trusted.a", b"1")];
        let dir = w.dir(root, b"dir", with_xattrs.clone()).unwrap();
        let sub = w.dir(dir, b"sub", meta(0o700)).unwrap();
        add_bytes(w, root, "small", meta(0o644), b"hello\n");
        add_bytes(w, dir, "big", meta(0o4755), &big);
        add_bytes(w, sub, "empty", meta(0o600), b"");
        w.symlink(root, b"link", meta(0o777), b"dir/big").unwrap();
        w.symlink(dir, b"xlink", with_xattrs.clone(), b"../small")
            .unwrap();
        w.special(
            root,
            b"blk",
            meta(0o660),
            Special::BlockDevice { major: 8, minor: 1 },
        )
        .unwrap();
        w.special(
            root,
            b"chr",
            with_xattrs.clone(),
            Special::CharDevice {
                major: 4095,
                minor: 0xfffff,
            },
        )
        .unwrap();
        w.special(root, b"fifo", meta(0o644), Special::Fifo)
            .unwrap();
        w.special(sub, b"sock", meta(0o755), Special::Socket)
            .unwrap();
        let mut r = &b"two names"[..];
        let target = w
            .file(root, b"linked", meta(0o640), 9, Content::Stream(&mut r))
            .unwrap();
        w.link(sub, b"linked-too", target).unwrap();
        w.link(root, b"linked-3", target).unwrap();
    });
    let a = open(&scratch);
    let sb = a.superblock();
    assert_eq!(sb.inode_count, 13);
    let root = a.root().unwrap();
    // Post-order: the root is the last inode, its parent one past it.
    assert_eq!(root.number(), 13);
    assert_eq!(root.parent(), Some(14));
    assert_eq!(root.nlink(), 3);
    let names: Vec<Vec<u8>> = a
        .read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    let want: Vec<&[u8]> = vec![
        b"blk",
        b"chr",
        b"dir",
        b"fifo",
        b"link",
        b"linked",
        b"linked-3",
        b"small",
    ];
    assert_eq!(names, want);

    let attr = |path: &str| a.attr(&a.lookup_path(path).unwrap()).unwrap();
    let dir = a.lookup_path("/dir").unwrap();
    assert_eq!(dir.mode(), 0o042750);
    assert_eq!(dir.nlink(), 3);
    assert_eq!(dir.parent(), Some(13));
    assert!(internals::is_extended(&dir));
    assert_eq!(
        a.xattrs(&dir).unwrap(),
        vec![xattr("trusted.a", b"1"), xattr("user.b", b"2")],
        "stored sorted by name"
    );
    let sub = a.lookup_path("/dir/sub").unwrap();
    assert_eq!(sub.parent(), Some(dir.number()));
    assert_eq!(a.read_file_at("/small", 100).unwrap(), b"hello\n");
    assert_eq!(a.read_file_at("/dir/big", 1 << 20).unwrap(), big);
    assert_eq!(attr("/dir/big").mode, 0o104755);
    assert_eq!(attr("/dir/sub/empty").size, 0);
    let link = a.lookup_path("/link").unwrap();
    assert_eq!(a.read_link(&link).unwrap(), b"dir/big");
    assert!(!internals::is_extended(&link));
    let xlink = a.lookup_path("/dir/xlink").unwrap();
    assert_eq!(a.read_link(&xlink).unwrap(), b"../small");
    assert_eq!(a.xattrs(&xlink).unwrap().len(), 2);
    let blk = a.lookup_path("/blk").unwrap();
    assert_eq!(
        (blk.kind(), blk.device()),
        (FileType::BlockDevice, Some((8, 1)))
    );
    let chr = a.lookup_path("/chr").unwrap();
    assert_eq!(
        (chr.kind(), chr.device()),
        (FileType::CharDevice, Some((4095, 0xfffff)))
    );
    assert!(internals::is_extended(&chr));
    assert_eq!(a.lookup_path("/fifo").unwrap().kind(), FileType::Fifo);
    let sock = a.lookup_path("/dir/sub/sock").unwrap();
    assert_eq!(
        (sock.kind(), sock.mode() & 0o7777),
        (FileType::Socket, 0o755)
    );
    let linked = a.lookup_path("/linked").unwrap();
    let too = a.lookup_path("/dir/sub/linked-too").unwrap();
    assert_eq!(linked.reference(), too.reference(), "one inode");
    assert_eq!(linked.nlink(), 3);
    assert!(internals::is_extended(&linked));
    assert_eq!(a.read_file(&too, 100).unwrap(), b"two names");
    let small = a.attr(&a.lookup_path("/small").unwrap()).unwrap();
    assert_eq!(
        (small.uid, small.gid, small.mtime, small.nlink),
        (1000, 100, 1_600_000_000, 1)
    );
    check_export_table(&a);
}

#[test]
fn every_codec_writes_what_the_reader_reads() {
    let scratch = Scratch::new("codecs");
    let content = [text(200_000), noise(1, 140_000), vec![0; 131072], text(10)];
    let codecs = [
        (Compression::Gzip, None, vec![], false),
        (Compression::Gzip, Some(1), vec![], false),
        (Compression::Xz, None, vec![], false),
        (
            Compression::Xz,
            Some(3),
            vec!["x86".into(), "arm".into()],
            false,
        ),
        (Compression::Zstd, None, vec![], false),
        (Compression::Zstd, Some(3), vec![], false),
        (Compression::Lz4, None, vec![], false),
        (Compression::Lz4, Some(9), vec![], true),
        (Compression::Lzo, None, vec![], false),
    ];
    for (codec, level, xz_filters, lz4_hc) in codecs {
        let options = WriteOptions {
            compression: codec,
            level,
            xz_filters,
            lz4_hc,
            threads: 2,
            ..WriteOptions::default()
        };
        pack(&scratch, &options, |w| {
            let root = w.root();
            for (i, c) in content.iter().enumerate() {
                add_bytes(w, root, &format!("f{i}"), meta(0o644), c);
            }
        });
        let a = open(&scratch);
        assert_eq!(a.superblock().compression, codec);
        for (i, c) in content.iter().enumerate() {
            let got = a.read_file_at(&format!("/f{i}"), 1 << 20).unwrap();
            assert!(got == *c, "{codec:?} {level:?}: f{i} differs");
        }
        // The noise is stored as it is, the zeros as a hole.
        let f1 = a.lookup_path("/f1").unwrap();
        let data = a.file_data(&f1).unwrap();
        assert!(!internals::data_block_at(&data, 0).1.compressed);
        let f2 = a.file_data(&a.lookup_path("/f2").unwrap()).unwrap();
        assert!(f2.is_hole(0));
    }
}

/// With a cache smaller than one block per shard every block read evicts another, and
/// the next block is decoded into the evicted one's buffer, stale bytes and all: each
/// codec must give exactly the file's bytes anyway, for blocks, tails in fragments
/// (shorter than the buffer's last contents) and metadata.
#[test]
fn blocks_decoded_into_reused_buffers_read_back() {
    let scratch = Scratch::new("reuse");
    let content = [
        text(700_000),
        noise(3, 300_000),
        text(5),
        text(90_000),
        noise(4, 1000),
        text(131_072 * 3 + 17),
    ];
    for codec in [
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Lzo,
    ] {
        let options = WriteOptions {
            compression: codec,
            threads: 2,
            ..WriteOptions::default()
        };
        pack(&scratch, &options, |w| {
            let root = w.root();
            for d in 0..3 {
                let dir = w
                    .dir(root, format!("d{d}").as_bytes(), meta(0o755))
                    .unwrap();
                for (i, c) in content.iter().enumerate() {
                    add_bytes(w, dir, &format!("f{i}"), meta(0o644), c);
                }
            }
        });
        let small = sqfs::OpenOptions {
            offset: 0,
            cache_bytes: 64 << 10,
        };
        let a = Archive::open_file(File::open(&scratch.0).unwrap(), &small).unwrap();
        for round in 0..2 {
            for d in [2, 0, 1] {
                for (i, c) in content.iter().enumerate().rev() {
                    let got = a.read_file_at(&format!("/d{d}/f{i}"), 1 << 20).unwrap();
                    assert!(got == *c, "{codec:?} round {round}: /d{d}/f{i} differs");
                }
            }
        }
    }
}

/// A tree with a bit of everything, for the reproducibility test.
fn mixed_tree(w: &mut Writer) {
    let root = w.root();
    for d in 0..4 {
        let dir = w
            .dir(root, format!("d{d}").as_bytes(), meta(0o755))
            .unwrap();
        for f in 0..40 {
            let len = (f * 7919 + d * 131) % 300_000;
            let bytes = if f % 3 == 0 {
                noise(f as u64, len)
            } else {
                text(len)
            };
            add_bytes(w, dir, &format!("f{f}"), meta(0o644), &bytes);
        }
        add_bytes(w, dir, "dup", meta(0o644), &text(200_000));
    }
}

#[test]
fn the_same_bytes_whatever_the_thread_count() {
    let scratch = Scratch::new("threads");
    let images: Vec<Vec<u8>> = [1, 2, 8, 8]
        .iter()
        .map(|&threads| {
            let options = WriteOptions {
                compression: Compression::Zstd,
                threads,
                mkfs_time: 1_700_000_000,
                ..WriteOptions::default()
            };
            pack(&scratch, &options, mixed_tree).0
        })
        .collect();
    for (i, image) in images.iter().enumerate().skip(1) {
        assert!(*image == images[0], "image {i} differs from the first");
    }
    // And it holds what was added.
    let a = open(&scratch);
    assert_eq!(a.superblock().mkfs_time, 1_700_000_000);
    assert_eq!(
        a.read_file_at("/d3/f3", 1 << 20).unwrap(),
        noise(3, 3 * 7919 + 393)
    );
}

#[test]
fn duplicates_are_stored_once_unless_asked_not_to() {
    let scratch = Scratch::new("dups");
    let content = noise(5, 3 * 131072 + 1000);
    let small = b"small and the same".to_vec();
    for duplicates in [true, false] {
        let options = WriteOptions {
            duplicates,
            ..WriteOptions::default()
        };
        let (_, summary) = pack(&scratch, &options, |w| {
            let root = w.root();
            for name in ["a", "b", "c"] {
                add_bytes(w, root, name, meta(0o644), &content);
                add_bytes(w, root, &format!("small-{name}"), meta(0o644), &small);
            }
            // Same size, other bytes: not a duplicate.
            add_bytes(w, root, "d", meta(0o644), &noise(6, content.len()));
        });
        let a = open(&scratch);
        let start = |name: &str| match body(&a.lookup_path(name).unwrap()) {
            InodeBody::File(f) => (f.blocks_start, f.fragment),
            other => panic!("{other:?}"),
        };
        assert_eq!(start("/a") == start("/c"), duplicates);
        assert_eq!(start("/small-a") == start("/small-b"), duplicates);
        assert_ne!(start("/a"), start("/d"));
        assert_eq!(summary.duplicates, if duplicates { 4 } else { 0 });
        for name in ["/a", "/b", "/c"] {
            assert!(a.read_file_at(name, 1 << 20).unwrap() == content);
        }
        assert_eq!(a.read_file_at("/small-c", 100).unwrap(), small);
        let stored = summary.bytes_used as usize;
        if duplicates {
            // a and d.
            assert!(stored < 5 * content.len() / 2, "{stored} bytes stored");
        } else {
            assert!(stored > 4 * content.len(), "{stored} bytes stored");
        }
    }
}

#[test]
fn tails_go_to_fragments_as_asked() {
    let scratch = Scratch::new("fragments");
    let content = text(3 * 4096 + 100);
    for (fragments, blocks, has_fragment) in [
        (Fragments::Never, 4, false),
        (Fragments::SmallFiles, 4, true),
        (Fragments::Always, 3, true),
    ] {
        let options = WriteOptions {
            fragments,
            block_size: 4096,
            ..WriteOptions::default()
        };
        let (_, summary) = pack(&scratch, &options, |w| {
            let root = w.root();
            add_bytes(w, root, "big", meta(0o644), &content);
            add_bytes(w, root, "small", meta(0o644), b"small");
        });
        let a = open(&scratch);
        let big = a.lookup_path("/big").unwrap();
        assert_eq!(a.file_data(&big).unwrap().block_count(), blocks);
        assert_eq!(summary.fragments > 0, has_fragment, "{fragments:?}");
        assert_eq!(a.superblock().fragment_count, summary.fragments);
        assert_eq!(a.read_file(&big, 1 << 20).unwrap(), content);
        assert_eq!(a.read_file_at("/small", 100).unwrap(), b"small");
    }
}

/// The largest set one file can carry: 256 names of 255 bytes (64 KiB to list, each with
/// its NUL) and 256 distinct values of 64 KiB (16 MiB, the reader's bound for one list).
fn biggest_xattr_set() -> Vec<Xattr> {
    (0..256u32)
        .map(|i| {
            let prefix = ["user.", "trusted.", "security."][i as usize % 3];
            let name = format!("{prefix}{i:03}-{}", "n".repeat(255 - prefix.len() - 4));
            Xattr {
                name: name.into_bytes(),
                value: noise(u64::from(i), 65536),
            }
        })
        .collect()
}

#[test]
fn xattr_sets_linux_cannot_list_are_refused() {
    let scratch = Scratch::new("xattr-limits");
    let out = File::create(&scratch.0).unwrap();
    let mut w = Writer::create(out, &WriteOptions::default(), meta(0o755)).unwrap();
    let root = w.root();
    let biggest = biggest_xattr_set();
    let with = |extra: Xattr| {
        let mut set = biggest[1..].to_vec();
        set.push(extra);
        set
    };
    let long_name = format!("user.{}", "x".repeat(251));
    let bad: Vec<(&str, Vec<Xattr>, XattrProblem, &str)> = vec![
        (
            "prefix",
            vec![xattr("system.x", b"v")],
            XattrProblem::Prefix,
            "system.x",
        ),
        (
            "no-prefix",
            vec![xattr("user", b"v")],
            XattrProblem::Prefix,
            "user",
        ),
        (
            "empty",
            vec![xattr("user.", b"v")],
            XattrProblem::EmptyName,
            "user.",
        ),
        (
            "empty-security",
            vec![xattr("user.ok", b""), xattr("security.", b"v")],
            XattrProblem::EmptyName,
            "security.",
        ),
        (
            "nul",
            vec![xattr("user.a\0b", b"v")],
            XattrProblem::Nul,
            "user.a\0b",
        ),
        (
            "long-name",
            vec![xattr(&long_name, b"v")],
            XattrProblem::LongName,
            &long_name,
        ),
        (
            "long-value",
            vec![xattr("trusted.v", &vec![1; 65537])],
            XattrProblem::LongValue,
            "trusted.v",
        ),
        // One more name of 2 bytes (8 with its prefix and NUL) past 64 KiB of names.
        (
            "names",
            {
                let mut set = biggest.clone();
                set.push(xattr("user.~", b""));
                set
            },
            XattrProblem::ListTooLong,
            "user.~",
        ),
        // Shorter names, 16 MiB of values and one byte more.
        (
            "values",
            {
                let mut set: Vec<Xattr> = (0..256)
                    .map(|i| xattr(&format!("user.{i:03}"), &noise(i, 65536)))
                    .collect();
                set.push(xattr("user.~", b"1"));
                set
            },
            XattrProblem::ValuesTooBig,
            "user.~",
        ),
    ];
    for (file, set, expected, culprit) in bad {
        let mut m = meta(0o644);
        m.xattrs = set;
        let e = w
            .special(root, file.as_bytes(), m, Special::Fifo)
            .unwrap_err();
        match &e {
            WriteError::Xattr { name, problem } => {
                assert_eq!(
                    (*problem, name.as_str()),
                    (expected, culprit),
                    "{file}: {e}"
                );
            }
            _ => panic!("{file}: {e}"),
        }
        assert!(
            e.to_string().contains(&format!("{culprit:?}")),
            "{file}: {e}"
        );
    }
    // A set at every limit save one is refused by that one (and set_meta checks too).
    let mut m = meta(0o755);
    m.xattrs = with(xattr("user.a\0", b""));
    assert!(matches!(
        w.set_meta(root, m),
        Err(WriteError::Xattr {
            problem: XattrProblem::Nul,
            ..
        })
    ));
    // The refusals leave the writer usable and nothing of them in the image.
    w.special(root, b"after", meta(0o644), Special::Fifo)
        .unwrap();
    w.finish().unwrap();
    let a = open(&scratch);
    let names: Vec<Vec<u8>> = a
        .read_dir(&a.root().unwrap())
        .unwrap()
        .map(|e| e.unwrap().name.to_vec())
        .collect();
    assert_eq!(names, vec![b"after".to_vec()]);
    assert!(a.xattrs(&a.root().unwrap()).unwrap().is_empty());
}

#[test]
fn the_biggest_xattr_set_round_trips() {
    let scratch = Scratch::new("xattr-biggest");
    let mut set = biggest_xattr_set();
    let names: usize = set.iter().map(|x| x.name.len() + 1).sum();
    let values: usize = set.iter().map(|x| x.value.len()).sum();
    assert_eq!((names, values), (65536, 16 << 20));
    let mut m = meta(0o644);
    m.xattrs = set.clone();
    let options = WriteOptions {
        compression: Compression::Zstd,
        ..WriteOptions::default()
    };
    pack(&scratch, &options, |w| {
        let root = w.root();
        w.special(root, b"full", m.clone(), Special::Fifo).unwrap();
        // The same set again shares its id; reversed, it is the same set.
        m.xattrs.reverse();
        w.special(root, b"again", m, Special::Socket).unwrap();
    });
    let a = open(&scratch);
    set.sort_by(|x, y| x.name.cmp(&y.name));
    for path in ["/full", "/again"] {
        let inode = a.lookup_path(path).unwrap();
        assert_eq!(a.xattrs(&inode).unwrap(), set, "{path}");
        let last = set.last().unwrap();
        assert_eq!(a.xattr(&inode, &last.name).unwrap(), last.value);
    }
    assert_eq!(a.xattr_id_count(), 1);
}

#[test]
fn holes_and_a_file_past_4_gib() {
    let scratch = Scratch::new("huge");
    let source = Scratch::new("huge-source");
    let size = (4u64 << 30) + 1_000_000 + 12345;
    let head = noise(7, 70_000);
    let across = text(300_000);
    let end = b"the end".to_vec();
    {
        use std::os::unix::fs::FileExt;
        let f = File::create(&source.0).unwrap();
        f.write_all_at(&head, 0).unwrap();
        f.write_all_at(&across, (4u64 << 30) - 100_000).unwrap();
        f.write_all_at(&end, size - end.len() as u64).unwrap();
        f.set_len(size).unwrap();
    }
    let (_, summary) = pack(&scratch, &WriteOptions::default(), |w| {
        let root = w.root();
        let f = File::open(&source.0).unwrap();
        w.file(root, b"huge", meta(0o644), size, Content::File(&f))
            .unwrap();
    });
    assert_eq!(summary.bytes_read, size);
    assert!(summary.bytes_used < 1 << 20, "{} bytes", summary.bytes_used);
    let a = open(&scratch);
    let huge = a.lookup_path("/huge").unwrap();
    assert_eq!(huge.size(), size);
    assert!(
        internals::is_extended(&huge),
        "size and holes need the extended form"
    );
    let data = a.file_data(&huge).unwrap();
    assert!(!data.is_hole(0) && data.is_hole(1) && data.is_hole(10_000));
    let mut buf = vec![0u8; across.len()];
    a.read_at(&huge, (4u64 << 30) - 100_000, &mut buf).unwrap();
    let first_bad = buf.iter().zip(&across).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "the bytes across 4 GiB");
    let mut buf = vec![0u8; 100];
    assert_eq!(a.read_at(&huge, size - 100, &mut buf).unwrap(), 100);
    assert_eq!(&buf[93..], &end[..]);
    assert!(buf[..93].iter().all(|&b| b == 0));
    a.read_at(&huge, 0, &mut buf).unwrap();
    assert_eq!(buf, head[..100]);
}

/// Set when this test binary runs again to pack the big sparse file in a process of its
/// own: its peak resident memory is then the pack's alone.
const SPARSE_CHILD: &str = "SQFS_WRITER_SPARSE_CHILD";

/// The peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_huge_sparse_file_packs_in_bounded_memory() {
    let child = "sparse_pack_in_a_process_of_its_own";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--include-ignored", "--nocapture"])
        .env(SPARSE_CHILD, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("test {child} ... ok")), "{stdout}");
}

/// 64 GiB of holes at 4 KiB blocks (16 million blocks), a few data blocks at 32 GiB and a
/// partial one at the end. The block list is 64 MiB on disk (compressed to a few hundred
/// KiB of zeros): it was held whole in memory, and copied again to write the inode (peak
/// RSS 160-170 MiB; 2.6 GiB for 1 TiB); the holes are runs now.
#[test]
#[ignore = "run by a_huge_sparse_file_packs_in_bounded_memory in a process of its own"]
fn sparse_pack_in_a_process_of_its_own() {
    use std::os::unix::fs::FileExt;
    assert!(
        std::env::var_os(SPARSE_CHILD).is_some(),
        "measures its own process: run a_huge_sparse_file_packs_in_bounded_memory"
    );
    let scratch = Scratch::new("sparse");
    let source = Scratch::new("sparse-source");
    let size = (64u64 << 30) + 1000;
    let middle = noise(3, 10_000);
    let end = b"the end".to_vec();
    {
        let f = File::create(&source.0).unwrap();
        f.write_all_at(&middle, 32 << 30).unwrap();
        f.write_all_at(&end, size - end.len() as u64).unwrap();
        f.set_len(size).unwrap();
    }
    let options = WriteOptions {
        block_size: 4096,
        ..WriteOptions::default()
    };
    let (_, summary) = pack(&scratch, &options, |w| {
        let root = w.root();
        let f = File::open(&source.0).unwrap();
        w.file(root, b"sparse", meta(0o644), size, Content::File(&f))
            .unwrap();
    });
    let peak = peak_rss_kib();
    eprintln!(
        "64 GiB sparse file at 4 KiB blocks: peak RSS {peak} KiB, image {} bytes",
        summary.bytes_used
    );
    // The window of blocks in flight is 32 MiB at 4 KiB blocks.
    assert!(peak < 96 << 10, "peak RSS {peak} KiB");
    assert_eq!(summary.bytes_read, size);
    assert!(summary.bytes_used < 4 << 20, "{} bytes", summary.bytes_used);

    let a = open(&scratch);
    let inode = a.lookup_path("/sparse").unwrap();
    assert_eq!(inode.size(), size);
    let data = a.file_data(&inode).unwrap();
    let blocks = size.div_ceil(4096) as usize;
    assert_eq!(data.block_count(), blocks);
    let at = ((32u64 << 30) / 4096) as usize;
    for i in [0, 1, at - 1, at + 3, blocks / 4, blocks - 2] {
        assert!(data.is_hole(i), "block {i}");
    }
    for i in [at, at + 1, at + 2, blocks - 1] {
        assert!(!data.is_hole(i), "block {i}");
    }
    let zeros = |offset: u64| {
        let mut buf = vec![1u8; 1 << 20];
        assert_eq!(a.read_at(&inode, offset, &mut buf).unwrap(), buf.len());
        assert!(buf.iter().all(|&b| b == 0), "zeros at {offset}");
    };
    for offset in [0, 17 << 30, (32 << 30) - (1 << 20), 63 << 30] {
        zeros(offset);
    }
    let mut buf = vec![0u8; middle.len() + 200];
    a.read_at(&inode, (32 << 30) - 100, &mut buf).unwrap();
    assert!(buf[..100]
        .iter()
        .chain(&buf[100 + middle.len()..])
        .all(|&b| b == 0));
    assert_eq!(&buf[100..100 + middle.len()], &middle[..]);
    let mut buf = vec![1u8; 1000];
    assert_eq!(a.read_at(&inode, size - 1000, &mut buf).unwrap(), 1000);
    assert!(buf[..993].iter().all(|&b| b == 0));
    assert_eq!(&buf[993..], &end[..]);
}

#[test]
fn a_big_directory_with_many_owners() {
    let scratch = Scratch::new("bigdir");
    let count = 3000u32;
    pack(&scratch, &WriteOptions::default(), |w| {
        let root = w.root();
        let dir = w.dir(root, b"big", meta(0o755)).unwrap();
        // Added in reverse: listings are sorted whatever the order.
        for i in (0..count).rev() {
            let name = format!("entry-{i:05}-{}", "x".repeat(i as usize % 90));
            let m = Meta {
                uid: 100_000 + i,
                gid: 200_000 + i % 7,
                ..meta(0o644)
            };
            let mut r = &b""[..];
            w.file(dir, name.as_bytes(), m, 0, Content::Stream(&mut r))
                .unwrap();
        }
    });
    let a = open(&scratch);
    // 3000 uids, 7 gids, the root's two owners.
    assert_eq!(a.superblock().id_count, 3009);
    let dir = a.lookup_path("/big").unwrap();
    let InodeBody::Directory(info) = body(&dir) else {
        panic!("not a directory")
    };
    assert!(
        info.index_count > 0,
        "a listing of many blocks has an index"
    );
    let entries: Vec<_> = a.read_dir(&dir).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(entries.len(), count as usize);
    for i in (0..count).step_by(37) {
        let name = format!("entry-{i:05}-{}", "x".repeat(i as usize % 90));
        let inode = a.lookup(&dir, name.as_bytes()).unwrap();
        let attr = a.attr(&inode).unwrap();
        assert_eq!((attr.uid, attr.gid), (100_000 + i, 200_000 + i % 7));
    }
    check_export_table(&a);
}

#[test]
fn xattr_values_seen_before_are_stored_once() {
    let scratch = Scratch::new("xattrs");
    let long = noise(9, 3000);
    let (_, summary) = pack(&scratch, &WriteOptions::default(), |w| {
        let root = w.root();
        for i in 0..5 {
            let mut m = meta(0o644);
            m.xattrs = vec![
                xattr("user.long", &long),
                xattr("security.n", format!("{i}").as_bytes()),
            ];
            add_bytes(w, root, &format!("f{i}"), m.clone(), b"");
            // The same set again: the same xattr id.
            add_bytes(w, root, &format!("g{i}"), m, b"");
        }
    });
    assert_eq!(summary.xattr_sets, 5);
    assert!(
        summary.bytes_used < 2 * long.len() as u64,
        "{} bytes: the value is stored once",
        summary.bytes_used
    );
    let a = open(&scratch);
    assert_eq!(a.xattr_id_count(), 5);
    for i in 0..5 {
        for name in [format!("/f{i}"), format!("/g{i}")] {
            let inode = a.lookup_path(&name).unwrap();
            assert_eq!(a.xattr(&inode, b"user.long").unwrap(), long);
            assert_eq!(
                a.xattr(&inode, b"security.n").unwrap(),
                format!("{i}").as_bytes()
            );
        }
    }
}

#[test]
fn what_cannot_be_stored_is_refused() {
    let scratch = Scratch::new("refused");
    let out = File::create(&scratch.0).unwrap();
    let mut w = Writer::create(out, &WriteOptions::default(), meta(0o755)).unwrap();
    let root = w.root();
    for name in [&b""[..], b".", b"..", b"a/b", b"nul\0", &[b'x'; 257]] {
        assert!(matches!(
            w.dir(root, name, meta(0o755)),
            Err(WriteError::BadName(_))
        ));
    }
    let dir = w.dir(root, b"dir", meta(0o755)).unwrap();
    assert!(matches!(
        w.link(root, b"dir-link", dir),
        Err(WriteError::NotADirectory)
    ));
    let fifo = w
        .special(root, b"fifo", meta(0o644), Special::Fifo)
        .unwrap();
    assert!(matches!(
        w.dir(fifo, b"under-a-fifo", meta(0o755)),
        Err(WriteError::NotADirectory)
    ));
    assert!(matches!(
        w.symlink(root, b"l", meta(0o777), b""),
        Err(WriteError::SymlinkTarget(0))
    ));
    assert!(matches!(
        w.symlink(root, b"l", meta(0o777), &[b'a'; 4097]),
        Err(WriteError::SymlinkTarget(4097))
    ));
    let dev = Special::CharDevice {
        major: 4096,
        minor: 0,
    };
    assert!(matches!(
        w.special(root, b"c", meta(0o644), dev),
        Err(WriteError::Device { .. })
    ));
    let mut bad = meta(0o644);
    bad.xattrs = vec![xattr("system.posix_acl_access", b"x")];
    assert!(matches!(
        w.special(root, b"x", bad, Special::Fifo),
        Err(WriteError::Xattr {
            problem: XattrProblem::Prefix,
            ..
        })
    ));
    // A content shorter or longer than its size: the file is left out, the rest goes on.
    let content = text(300_000);
    for size in [content.len() as u64 + 1, content.len() as u64 - 1, 10] {
        let mut r = &content[..];
        let e = w
            .file(
                root,
                b"changing",
                meta(0o644),
                size,
                Content::Stream(&mut r),
            )
            .unwrap_err();
        assert!(
            matches!(e, WriteError::SizeChanged { expected, .. } if expected == size),
            "{e}"
        );
        assert!(e.leaves_writer_usable());
    }
    add_bytes(&mut w, root, "after", meta(0o644), &content);
    w.finish().unwrap();
    let a = open(&scratch);
    assert!(a.lookup_path("/changing").is_err());
    assert_eq!(a.read_file_at("/after", 1 << 20).unwrap(), content);

    // A name twice in a directory is found when the listings are sorted.
    let out = File::create(&scratch.0).unwrap();
    let mut w = Writer::create(out, &WriteOptions::default(), meta(0o755)).unwrap();
    let root = w.root();
    w.special(root, b"twice", meta(0o644), Special::Fifo)
        .unwrap();
    w.special(root, b"twice", meta(0o644), Special::Socket)
        .unwrap();
    assert!(matches!(w.finish(), Err(WriteError::Duplicate(n)) if n == "twice"));

    // Settings that cannot be written.
    for options in [
        WriteOptions {
            block_size: 3000,
            ..WriteOptions::default()
        },
        WriteOptions {
            compression: Compression::Lzma,
            ..WriteOptions::default()
        },
        WriteOptions {
            level: Some(23),
            compression: Compression::Zstd,
            ..WriteOptions::default()
        },
        WriteOptions {
            compression: Compression::Xz,
            xz_filters: vec!["mips".into()],
            ..WriteOptions::default()
        },
    ] {
        let out = File::create(&scratch.0).unwrap();
        assert!(matches!(
            Writer::create(out, &options, meta(0o755)),
            Err(WriteError::Options(_))
        ));
    }
}

#[test]
fn an_empty_root_is_an_image() {
    let scratch = Scratch::new("empty");
    let (bytes, summary) = pack(&scratch, &WriteOptions::default(), |_| {});
    assert_eq!(summary.inodes, 1);
    assert_eq!(bytes.len(), 4096);
    let a = open(&scratch);
    assert_eq!(a.read_dir(&a.root().unwrap()).unwrap().count(), 0);
    let mut f = File::open(&scratch.0).unwrap();
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic).unwrap();
    assert_eq!(&magic, b"hsqs");
}

#[test]
fn files_read_from_disk_are_found_to_be_duplicates_before_they_are_stored() {
    let scratch = Scratch::new("disk-dups");
    let dir =
        std::env::temp_dir().join(format!("sqfs-writer-{}-disk-dups-src", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let content = {
        let mut c = noise(11, 2 * 131072);
        c.extend(vec![0; 131072]);
        c.extend(text(5000));
        c
    };
    std::fs::write(dir.join("a"), &content).unwrap();
    std::fs::write(dir.join("b"), &content).unwrap();
    // The same bytes with a hole where a and b have written zeros.
    {
        use std::os::unix::fs::FileExt;
        let f = File::create(dir.join("sparse")).unwrap();
        f.write_all_at(&content[..2 * 131072], 0).unwrap();
        f.write_all_at(&content[3 * 131072..], 3 * 131072).unwrap();
    }
    let mut other = content.clone();
    other[1000] ^= 1;
    std::fs::write(dir.join("other"), &other).unwrap();
    let (_, summary) = pack(&scratch, &WriteOptions::default(), |w| {
        let root = w.root();
        for name in ["a", "other", "b", "sparse"] {
            let f = File::open(dir.join(name)).unwrap();
            let size = f.metadata().unwrap().len();
            w.file(root, name.as_bytes(), meta(0o644), size, Content::File(&f))
                .unwrap();
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(summary.duplicates, 2);
    assert_eq!(summary.bytes_read, 4 * content.len() as u64);
    let a = open(&scratch);
    let start = |name: &str| match body(&a.lookup_path(name).unwrap()) {
        InodeBody::File(f) => f.blocks_start,
        other => panic!("{other:?}"),
    };
    assert_eq!(start("/a"), start("/b"));
    assert_eq!(start("/a"), start("/sparse"));
    assert_ne!(start("/a"), start("/other"));
    for (name, bytes) in [
        ("/a", &content),
        ("/b", &content),
        ("/sparse", &content),
        ("/other", &other),
    ] {
        assert!(a.read_file_at(name, 1 << 20).unwrap() == *bytes, "{name}");
    }
    // Two noise blocks of a and two of other (a hole and a fragment-less tail each).
    assert!(summary.bytes_used < 5 * 131072, "{}", summary.bytes_used);
}

#[test]
fn removed_entries_are_gone_and_their_names_replaced() {
    let scratch = Scratch::new("removed");
    pack(&scratch, &WriteOptions::default(), |w| {
        let root = w.root();
        // One name added, taken out, added again, twice over: the last one stays.
        add_bytes(w, root, "again", meta(0o644), b"first\n");
        w.remove(root, b"again").unwrap();
        add_bytes(w, root, "again", meta(0o600), b"second\n");
        w.remove(root, b"again").unwrap();
        add_bytes(w, root, "again", meta(0o640), b"third\n");
        // A file with a name in a directory that is taken out, one outside it, and one
        // name taken out on its own: one name left.
        let mut r = &b"linked"[..];
        let linked = w
            .file(root, b"linked", meta(0o644), 6, Content::Stream(&mut r))
            .unwrap();
        let dir = w.dir(root, b"dir", meta(0o755)).unwrap();
        let sub = w.dir(dir, b"sub", meta(0o755)).unwrap();
        w.link(dir, b"link-in-dir", linked).unwrap();
        w.link(sub, b"link-in-sub", linked).unwrap();
        w.link(root, b"link-2", linked).unwrap();
        add_bytes(w, sub, "inside", meta(0o644), b"gone with dir\n");
        w.remove(root, b"link-2").unwrap();
        w.remove(root, b"dir").unwrap();
        // The directory's name given to a file.
        add_bytes(w, root, "dir", meta(0o644), b"a file now\n");
    });
    let a = open(&scratch);
    let root = a.root().unwrap();
    let names: Vec<Vec<u8>> = a
        .read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    assert_eq!(
        names,
        vec![b"again".to_vec(), b"dir".to_vec(), b"linked".to_vec()]
    );
    assert_eq!(a.read_file_at("/again", 100).unwrap(), b"third\n");
    assert_eq!(
        a.attr(&a.lookup_path("/again").unwrap()).unwrap().mode & 0o777,
        0o640
    );
    assert_eq!(a.read_file_at("/dir", 100).unwrap(), b"a file now\n");
    let linked = a.lookup_path("/linked").unwrap();
    assert_eq!(linked.nlink(), 1, "the names in dir and link-2 are gone");
    assert_eq!(root.nlink(), 2, "no directory under the root");
    assert_eq!(a.superblock().inode_count, 4);
    check_export_table(&a);
}

#[test]
fn removing_a_name_that_is_not_there_fails_at_finish() {
    type Build = fn(&mut Writer);
    let cases: [(&str, Build); 3] = [
        ("never added", |w| {
            let root = w.root();
            w.remove(root, b"absent").unwrap();
        }),
        ("added only after", |w| {
            let root = w.root();
            w.remove(root, b"later").unwrap();
            add_bytes(w, root, "later", meta(0o644), b"x");
        }),
        ("taken out twice", |w| {
            let root = w.root();
            add_bytes(w, root, "once", meta(0o644), b"x");
            w.remove(root, b"once").unwrap();
            w.remove(root, b"once").unwrap();
        }),
    ];
    for (case, build) in cases {
        let scratch = Scratch::new("not-there");
        let out = File::create(&scratch.0).unwrap();
        let mut w = Writer::create(out, &WriteOptions::default(), meta(0o755)).unwrap();
        build(&mut w);
        match w.finish() {
            Err(WriteError::NotFound(name)) => assert!(!name.is_empty(), "{case}"),
            other => panic!("{case}: {other:?}"),
        }
    }
}
