//! The bodies of the fuzz targets, and the seeds they start from.
//!
//! This file is the `sqfs_fuzz` library of the cargo-fuzz crate and is also compiled into
//! `sqfs/tests/fuzz_regressions.rs` (as a module, by path), so that a plain `cargo test`
//! replays the seeds and every committed crashing input through exactly these code paths.
//! It may therefore use only `sqfs`, `libc` and `std`, and no crate-level attributes.
//!
//! What counts as a finding: a panic (including an assertion below, an arithmetic overflow
//! or an out-of-range index), a run longer than libFuzzer's `-timeout`, or memory beyond
//! `-rss_limit_mb` / `-malloc_limit_mb`. Every error `sqfs` returns is an allowed answer;
//! the assertions only check what must hold even for a hostile image.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;

use sqfs::internals::{
    self, new_decompressor, BlockReader, Context, Index, InodeBody, Limits, Source, Table, MAX_NAME,
};
use sqfs::{Archive, Compression, DirEntry, Error, FileType, Inode, MetaRef, OpenOptions};

/// The `sif` target (SIF container parsing and opening), in its own file.
pub mod sif;

/// The `pack` target (a tree packed by the writer and read back), in its own file.
pub mod pack;

/// The fuzz targets, by name (each has a binary in `fuzz/fuzz_targets/`).
pub const TARGETS: [&str; 4] = ["image", "decompress", "metadata", "mutate"];

/// Runs the target called `target` on `data`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "image" => image(data),
        "decompress" => decompress(data),
        "metadata" => metadata(data),
        "mutate" => mutate(data),
        _ => panic!("no fuzz target {target}"),
    }
}

/// The committed tiny images (testdata/tiny, made by testdata/build-tiny.sh), with the
/// byte offset each one's SquashFS starts at.
pub const TINY: [(&str, u64, &[u8]); 12] = [
    (
        "tiny-empty",
        0,
        include_bytes!("../../testdata/tiny/tiny-empty.sqfs"),
    ),
    (
        "tiny-gen-xz",
        0,
        include_bytes!("../../testdata/tiny/tiny-gen-xz.sqfs"),
    ),
    (
        "tiny-gzip-4k",
        0,
        include_bytes!("../../testdata/tiny/tiny-gzip-4k.sqfs"),
    ),
    (
        "tiny-gzip",
        0,
        include_bytes!("../../testdata/tiny/tiny-gzip.sqfs"),
    ),
    (
        "tiny-lz4",
        0,
        include_bytes!("../../testdata/tiny/tiny-lz4.sqfs"),
    ),
    (
        "tiny-lzma",
        0,
        include_bytes!("../../testdata/tiny/tiny-lzma.sqfs"),
    ),
    (
        "tiny-lzo",
        0,
        include_bytes!("../../testdata/tiny/tiny-lzo.sqfs"),
    ),
    (
        "tiny-offset-8k",
        8192,
        include_bytes!("../../testdata/tiny/tiny-offset-8k.sqfs"),
    ),
    (
        "tiny-uncompressed",
        0,
        include_bytes!("../../testdata/tiny/tiny-uncompressed.sqfs"),
    ),
    (
        "tiny-xz-bcj",
        0,
        include_bytes!("../../testdata/tiny/tiny-xz-bcj.sqfs"),
    ),
    (
        "tiny-xz",
        0,
        include_bytes!("../../testdata/tiny/tiny-xz.sqfs"),
    ),
    (
        "tiny-zstd",
        0,
        include_bytes!("../../testdata/tiny/tiny-zstd.sqfs"),
    ),
];

/// An anonymous in-memory file holding `bytes`: `Archive` reads a `File` with `pread`.
pub fn memfile(bytes: &[u8]) -> File {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; a non-negative result is
    // a new descriptor that nothing else owns, so File may take it over.
    let fd = unsafe { libc::memfd_create(c"sqfs-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: see above.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes).expect("write to a memfd");
    file
}

/// FNV-1a of the input: a deterministic source of "random" offsets and numbers.
fn salt(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes(s.try_into().expect("2 bytes")))
}

// ---------------------------------------------------------------------------------------
// image: arbitrary bytes opened as an image, then everything FUSE does with one.
// ---------------------------------------------------------------------------------------

/// Opens `data` as an image (at offset 0, or 4 / 8 KiB when the magic is there) and does
/// everything the FUSE filesystem can do through the `sqfs` API.
pub fn image(data: &[u8]) {
    image_walk(data);
}

/// [`image`], returning what the walk saw (None: the image did not open).
pub fn image_walk(data: &[u8]) -> Option<Walked> {
    let offset = [0u64, 4096, 8192]
        .into_iter()
        .find(|&o| data.get(o as usize..o as usize + 4) == Some(b"hsqs"))
        .unwrap_or(0);
    open_and_exercise(data, offset, salt(data))
}

fn open_and_exercise(bytes: &[u8], offset: u64, salt: u64) -> Option<Walked> {
    let options = OpenOptions {
        offset,
        // Small enough that eviction happens, large enough for a few 1 MiB blocks.
        cache_bytes: 4 << 20,
    };
    let archive = Archive::open_file(memfile(bytes), &options).ok()?;
    Some(exercise(&archive, salt))
}

/// Bounds that keep one run short whatever the image claims (cycles, huge listings).
const MAX_NODES: usize = 256;
const MAX_DIRS: usize = 64;
const MAX_DEPTH: usize = 32;
const MAX_ENTRIES: usize = 256;
/// Entries per directory that get a lookup and a resumed listing each.
const PROBED_ENTRIES: usize = 32;
const MAX_FILES: usize = 64;

/// A bounded breadth-first walk from the root plus inode numbers through the export table:
/// lookups, listings resumed at cookies, attributes, reads, link targets, xattrs.
pub fn exercise(a: &Archive, salt: u64) -> Walked {
    let sb = a.superblock().clone();
    let _ = (
        a.compressor_options(),
        a.has_export_table(),
        a.xattr_id_count(),
    );
    let mut budget = Walked::default();
    let count = sb.inode_count;
    let numbers = [
        0,
        1,
        count,
        count.wrapping_add(1),
        u32::MAX,
        (salt % u64::from(count.max(1))) as u32 + 1,
    ];
    for n in numbers {
        if let Ok(inode) = a.inode_by_number(n) {
            assert!(n >= 1 && n <= count, "inode_by_number({n}) of {count}");
            assert_eq!(inode.number(), n, "inode_by_number({n})");
            node(a, &inode, salt, &mut budget);
        }
    }
    let Ok(root) = a.root() else {
        return budget;
    };
    assert!(root.is_dir(), "open_file checks the root is a directory");
    let _ = a.lookup_path("/");
    let _ = a.lookup_path("/./no/such/path");
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([(root, 0usize)]);
    while let Some((inode, depth)) = queue.pop_front() {
        if budget.nodes >= MAX_NODES {
            break;
        }
        budget.nodes += 1;
        node(a, &inode, salt, &mut budget);
        if !inode.is_dir() || depth >= MAX_DEPTH || budget.dirs >= MAX_DIRS {
            continue;
        }
        if !seen.insert(inode.reference()) {
            continue;
        }
        budget.dirs += 1;
        for child in directory(a, &inode, depth == 0, salt) {
            queue.push_back((child, depth + 1));
        }
    }
    budget
}

/// What a walk did: nodes visited, directories listed, files read.
#[derive(Debug, Default)]
pub struct Walked {
    pub nodes: usize,
    pub dirs: usize,
    pub files: usize,
}

/// Everything that applies to one inode, whatever its type.
fn node(a: &Archive, inode: &Inode, salt: u64, budget: &mut Walked) {
    if let Ok(attr) = a.attr(inode) {
        assert_eq!(attr.ino, inode.number());
        assert_eq!(attr.size, inode.size());
        assert_eq!(attr.mode & 0o170000, inode.kind().mode_bits());
    }
    let _ = (inode.device(), inode.rdev());
    match a.read_link(inode) {
        Ok(target) => {
            assert_eq!(inode.kind(), FileType::Symlink);
            assert!(!target.is_empty() && target.len() <= 4096);
        }
        Err(e) => assert!(matches!(e, Error::NotASymlink) && inode.kind() != FileType::Symlink),
    }
    xattrs(a, inode);
    match inode.kind() {
        FileType::File => {
            if budget.files < MAX_FILES {
                budget.files += 1;
                file(a, inode, salt);
            }
        }
        FileType::Directory => {
            assert!(matches!(a.file_data(inode), Err(Error::NotAFile)));
        }
        _ => {
            assert!(matches!(a.file_data(inode), Err(Error::NotAFile)));
            assert!(matches!(a.read_dir(inode), Err(Error::NotADirectory)));
            assert!(matches!(
                a.lookup_entry(inode, b"x"),
                Err(Error::NotADirectory)
            ));
        }
    }
}

fn xattrs(a: &Archive, inode: &Inode) {
    let Ok(list) = a.xattrs(inode) else { return };
    if inode.xattr_index().is_none() {
        assert!(list.is_empty());
    }
    for x in list.iter().take(8) {
        let first = list.iter().find(|y| y.name == x.name).expect("present");
        match a.xattr(inode, &x.name) {
            Ok(value) => assert_eq!(value, first.value, "xattr value of a listed name"),
            // The same blocks read a second time may fail only if the image changed.
            Err(e) => panic!("listed xattr {:?} not found again: {e}", x.name),
        }
    }
    assert!(matches!(
        a.xattr(inode, b"user.\xffno such attribute"),
        Err(Error::NoXattr)
    ));
}

/// Reads at odd offsets and lengths, whole blocks through and around the cache, and
/// checks that one read equals the same range read in two pieces.
fn file(a: &Archive, inode: &Inode, salt: u64) {
    let Ok(data) = a.file_data(inode) else { return };
    let size = data.size();
    assert_eq!(size, inode.size());
    let bs = u64::from(a.superblock().block_size);
    let offsets = [
        0,
        1,
        bs - 1,
        bs,
        bs + 1,
        size / 2,
        size.saturating_sub(1),
        size.saturating_sub(bs + 3),
        size,
        size.saturating_add(1),
        u64::MAX,
        salt % size.saturating_add(1),
    ];
    let lengths = [1usize, 7, 4097, bs as usize + 3, 65536, 0];
    for (i, &offset) in offsets.iter().enumerate() {
        let len = lengths[(i + salt as usize) % lengths.len()];
        let mut whole = vec![0u8; len];
        let Ok(n) = a.read_data(&data, offset, &mut whole) else {
            continue;
        };
        let expect = (len as u64).min(size.saturating_sub(offset)) as usize;
        assert_eq!(n, expect, "read of {len} at {offset} in a {size}-byte file");
        if n > 1 {
            let cut = 1 + (salt as usize % (n - 1));
            let mut parts = vec![0u8; n];
            let first = a.read_data(&data, offset, &mut parts[..cut]);
            let second = a.read_data(&data, offset + cut as u64, &mut parts[cut..]);
            if let (Ok(x), Ok(y)) = (first, second) {
                assert_eq!((x, y), (cut, n - cut));
                assert!(parts == whole[..n], "split read differs at {offset}+{cut}");
            }
        }
    }
    let blocks = data.block_count();
    let mut out = Vec::new();
    for i in [0, 1, blocks / 2, blocks.saturating_sub(1)] {
        if i >= blocks {
            continue;
        }
        let cached = a.data_block(&data, i);
        let direct = a.data_block_into(&data, i, &mut out);
        match (cached, direct) {
            (Ok(Some(block)), Ok(Some(n))) => assert!(block[..] == out[..n], "block {i}"),
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
            (x, y) => panic!(
                "block {i} through the cache and around it disagree: {:?} / {:?}",
                x.map(|b| b.map(|b| b.len())),
                y
            ),
        }
    }
    let _ = a.read_at(inode, size.saturating_sub(5), &mut [0u8; 10]);
    // The bounded whole-file read: refused by size before anything is read, else exactly
    // the file's bytes (the same as reading them piecewise).
    let limit = [0usize, 1, bs as usize, READ_FILE_LIMIT][(salt % 4) as usize];
    match a.read_file(inode, limit) {
        Ok(bytes) => {
            assert!(bytes.len() as u64 == size && bytes.len() <= limit);
            let mut head = vec![0u8; bytes.len().min(4099)];
            if let Ok(n) = a.read_data(&data, 0, &mut head) {
                assert!(head[..n] == bytes[..n], "read_file differs from read_data");
            }
        }
        Err(Error::TooBig { size: s, limit: l }) => {
            assert!(s == size && l == limit as u64 && s > l, "TooBig {s} > {l}");
        }
        Err(_) => {}
    }
}

/// The most a walk reads with `Archive::read_file` at once.
const READ_FILE_LIMIT: usize = 256 << 10;

/// Lists `dir` (bounded), looks up present and absent names, resumes the listing at cookies,
/// and returns the children's inodes.
fn directory(a: &Archive, dir: &Inode, is_root: bool, salt: u64) -> Vec<Inode> {
    let entries: Vec<DirEntry> = match a.read_dir(dir) {
        Ok(list) => list.take(MAX_ENTRIES).map_while(Result::ok).collect(),
        Err(_) => return Vec::new(),
    };
    for pair in entries.windows(2) {
        assert!(pair[0].cookie < pair[1].cookie, "cookies must increase");
        // A listing refuses a repeated or out-of-order name: what it returned is sorted.
        assert!(
            pair[0].name < pair[1].name,
            "names of a listing must increase"
        );
    }
    // Without an index a resumed listing reads from the start, exactly as the whole one
    // did: the entry after a cookie is the next one listed, or a refusal.
    let indexed = matches!(internals::body(dir), InodeBody::Directory(d) if d.index_count > 0);
    for entry in entries.iter().take(PROBED_ENTRIES) {
        if let Ok(Some(found)) = a.lookup_entry(dir, &entry.name) {
            assert_eq!(found.name, entry.name);
        }
        let mut absent = entry.name.clone();
        absent.push(1);
        if let Ok(Some(found)) = a.lookup_entry(dir, &absent) {
            assert_eq!(found.name, absent);
        }
        if let Ok(mut rest) = a.read_dir_from(dir, entry.cookie) {
            if let Some(Ok(next)) = rest.next() {
                assert!(next.cookie > entry.cookie, "a resumed listing went back");
                if !indexed {
                    assert!(next.name > entry.name, "a resumed listing repeated a name");
                    let listed = entries.iter().find(|e| e.cookie > entry.cookie);
                    if let Some(listed) = listed {
                        assert_eq!(next.name, listed.name, "resumed listing differs");
                    }
                }
            }
        }
    }
    let long = vec![b'a'; MAX_NAME + 1];
    assert!(
        matches!(a.lookup_entry(dir, &long), Err(Error::NameTooLong)),
        "a name over {} bytes is ENAMETOOLONG",
        MAX_NAME
    );
    for name in [&b""[..], b".", b"..", b"/", b"a\0"] {
        assert!(
            matches!(a.lookup_entry(dir, name), Ok(None)),
            "lookup of {name:?} found something or failed"
        );
    }
    let mut cookies = vec![0, 1, salt % 4096];
    if is_root {
        // Far cookies make a listing without an index scan all of it: once per run.
        let size = dir.size();
        cookies.extend([size.saturating_sub(4), size, u64::MAX]);
        if let Some(last) = entries.last() {
            cookies.push(last.cookie);
            let _ = a.lookup_entry(dir, b"\xff\xff\xff no such name");
        }
    }
    for cookie in cookies {
        if let Ok(rest) = a.read_dir_from(dir, cookie) {
            for entry in rest.take(4).map_while(Result::ok) {
                assert!(entry.cookie > cookie, "entry before its cookie");
            }
        }
    }
    let mut children = Vec::new();
    for entry in &entries {
        if let Ok(child) = a.entry_inode(entry) {
            assert_eq!(child.number(), entry.inode_number);
            assert_eq!(child.kind(), entry.kind);
            children.push(child);
        }
    }
    if let Some(entry) = entries.first() {
        if let (Ok(x), Ok(y)) = (a.lookup(dir, &entry.name), a.entry_inode(entry)) {
            // Not necessarily the same inode: a hostile listing may repeat a name.
            let _ = (x.reference(), y.reference());
        }
    }
    children
}

// ---------------------------------------------------------------------------------------
// decompress: every codec on arbitrary input, output bounded by a size from the input.
// ---------------------------------------------------------------------------------------

/// Codec options every image of that codec may carry (lz4 needs some).
fn default_options(codec: Compression) -> Option<&'static [u8]> {
    (codec == Compression::Lz4).then_some(&[1, 0, 0, 0, 0, 0, 0, 0][..])
}

/// Input: `[codec, size, (options length, options…)?, block…]`. `codec % 6 + 1` is the
/// compressor id; bit 7 says the options block follows (at most 64 bytes, as in an image).
/// `size` picks the output buffer: a block size 4 KiB..1 MiB, or (bit 7) a small odd one.
pub fn decompress(data: &[u8]) {
    let [sel, size, rest @ ..] = data else { return };
    let codec = Compression::from_id(u16::from(sel % 6) + 1).expect("ids 1..=6");
    let (options, src) = if sel & 0x80 != 0 {
        let Some((&n, rest)) = rest.split_first() else {
            return;
        };
        let n = usize::from(n % 65).min(rest.len());
        (Some(&rest[..n]), &rest[n..])
    } else {
        (default_options(codec), rest)
    };
    let Ok(d) = new_decompressor(codec, options) else {
        return;
    };
    let max = if size & 0x80 == 0 {
        1usize << (12 + size % 9)
    } else {
        usize::from(size & 0x7f) * 37
    };
    let mut dst = vec![0u8; max];
    let first = d.decompress(src, &mut dst);
    match &first {
        Ok(n) => assert!(*n <= max, "{codec:?}: {n} bytes into {max}"),
        Err(e) => assert!(
            matches!(e, Error::Decompress { codec: c, .. } if *c == codec.name()),
            "{codec:?}: unexpected error {e:?}"
        ),
    }
    // The per-thread decoder context must not remember the previous block.
    let mut again = vec![0u8; max];
    let second = d.decompress(src, &mut again);
    match (&first, &second) {
        (Ok(x), Ok(y)) => assert!(
            x == y && dst[..*x] == again[..*y],
            "{codec:?}: not repeatable"
        ),
        (Err(_), Err(_)) => {}
        _ => panic!("{codec:?}: {first:?} then {second:?}"),
    }
    // A block that fits decodes the same into a larger buffer.
    if let Ok(n) = first {
        let mut roomy = vec![0u8; max + 4096];
        match d.decompress(src, &mut roomy) {
            Ok(m) => assert!(
                m == n && roomy[..m] == dst[..n],
                "{codec:?}: differs when roomy"
            ),
            Err(e) => panic!("{codec:?}: fits in {max} but not in {}: {e}", max + 4096),
        }
    }
}

// ---------------------------------------------------------------------------------------
// metadata: the metadata block reader, inode and directory parsers on their own.
// ---------------------------------------------------------------------------------------

/// Length of the metadata target's header.
pub const METADATA_HEADER: usize = 24;

/// Input: a 24-byte header then the bytes of an inode table followed by a directory table.
/// Header: `codec` (u8, `% 6 + 1`), `block_log` (u8, `% 9 + 12`), split (u32: where the
/// directory table starts in the body), root (u64: packed reference into the inode table),
/// inode count (u32), id count (u16), salt (u32).
pub fn metadata(data: &[u8]) {
    if data.len() < METADATA_HEADER {
        return;
    }
    let (head, body) = data.split_at(METADATA_HEADER);
    let codec = Compression::from_id(u16::from(head[0] % 6) + 1).expect("ids 1..=6");
    let block_size = 1u32 << (12 + head[1] % 9);
    let split = u64::from(u32_at(head, 2)).min(body.len() as u64);
    let root = MetaRef::from_packed(u64_at(head, 6));
    let limits = Limits {
        inode_count: u32_at(head, 14),
        id_count: u16_at(head, 18),
        block_size,
        fragment_count: u32::MAX,
    };
    let salt = u64::from(u32_at(head, 20));
    let Ok(decompressor) = new_decompressor(codec, default_options(codec)) else {
        return;
    };
    let mut source = Source::new(memfile(body), 0);
    source.set_len(body.len() as u64);
    let reader = BlockReader::new(source, decompressor, 1 << 20, block_size);
    let inodes = Table {
        start: 0,
        end: split,
    };
    let dirs = Table {
        start: split,
        end: body.len() as u64,
    };
    let ctx = Context::of_tables(reader, inodes, dirs, limits);
    // Every metadata block of both tables, following the chain of headers.
    for table in [inodes, dirs] {
        let mut pos = table.start;
        for _ in 0..4096 {
            match table.block_at(&ctx.reader, pos) {
                Ok((block, next)) => {
                    assert!(next > pos && next <= table.end);
                    // Empty blocks are possible (a stream may decode to nothing); a cursor
                    // skips them.
                    assert!(block.len() <= 8192);
                    pos = next;
                }
                Err(_) => break,
            }
        }
    }
    cursor_reads(&ctx, root, salt);
    // The root and what it leads to, bounded like the image walk.
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([root]);
    let mut dirs_listed = 0;
    while let Some(at) = queue.pop_front() {
        if seen.len() >= MAX_NODES || !seen.insert(at) {
            continue;
        }
        let Ok(inode) = internals::read_inode(&ctx, at) else {
            continue;
        };
        assert!(inode.number() >= 1 && inode.number() <= limits.inode_count);
        match internals::body(&inode) {
            InodeBody::Directory(info) if dirs_listed < MAX_DIRS => {
                dirs_listed += 1;
                if let Ok(mut index) = Index::new(&ctx, info) {
                    let mut last = 0;
                    while let Ok(Some(entry)) = index.next_entry() {
                        assert!(entry.listing_offset >= last);
                        last = entry.listing_offset;
                    }
                }
                let entries: Vec<DirEntry> = match internals::read_dir(&ctx, info, 0) {
                    Ok(list) => list.take(MAX_ENTRIES).map_while(Result::ok).collect(),
                    Err(_) => continue,
                };
                for entry in entries.iter().take(PROBED_ENTRIES) {
                    if let Ok(Some(found)) = internals::lookup(&ctx, info, &entry.name) {
                        assert_eq!(found.name, entry.name);
                    }
                    if let Ok(rest) = internals::read_dir(&ctx, info, entry.cookie) {
                        for next in rest.take(2).map_while(Result::ok) {
                            assert!(next.cookie > entry.cookie);
                        }
                    }
                }
                queue.extend(entries.iter().map(|e| e.inode));
            }
            InodeBody::File(info) => {
                if let Ok(data) = internals::file_data(&ctx, info) {
                    assert_eq!(data.size(), info.size);
                    let mut buf = vec![0u8; 4099];
                    let _ = internals::read_data(&ctx, &data, salt % info.size.max(1), &mut buf);
                    let _ = internals::read_data(&ctx, &data, 0, &mut buf);
                }
            }
            _ => {}
        }
    }
}

/// Raw cursor reads of odd sizes in both tables, until an error or the table's end.
fn cursor_reads(ctx: &Context, at: MetaRef, salt: u64) {
    for table in [ctx.inodes, ctx.dirs] {
        let Ok(mut c) = table.cursor(&ctx.reader, at) else {
            continue;
        };
        let mut s = salt;
        for _ in 0..64 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let before = c.position();
            let ok = match (s >> 60) % 8 {
                0 => c.u8().is_ok(),
                1 => c.u16().is_ok(),
                2 => c.u32().is_ok(),
                3 => c.u64().is_ok(),
                4 => c.bytes((s >> 32) as usize % 9000).is_ok(),
                5 => c.skip((s >> 40) % 20000).is_ok(),
                6 => c.skip(u64::MAX).is_ok(),
                _ => {
                    let mut buf = [0u8; 3];
                    c.read_exact(&mut buf).is_ok()
                }
            };
            if !ok {
                break;
            }
            let after = c.position();
            assert!(
                (after.block, after.offset) >= (before.block, before.offset),
                "a cursor moved backwards"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// mutate: a valid tiny image with the input applied as field patches.
// ---------------------------------------------------------------------------------------

/// The superblock's fields: (byte offset, width).
const SUPERBLOCK_FIELDS: [(usize, usize); 18] = [
    (4, 4),  // inode count
    (8, 4),  // mkfs time
    (12, 4), // block size
    (16, 4), // fragment count
    (20, 2), // compressor
    (22, 2), // block log
    (24, 2), // flags
    (26, 2), // id count
    (28, 2), // major
    (30, 2), // minor
    (32, 8), // root inode
    (40, 8), // bytes used
    (48, 8), // id table
    (56, 8), // xattr id table
    (64, 8), // inode table
    (72, 8), // directory table
    (80, 8), // fragment table
    (88, 8), // export table
];

/// Input: `[image, op…]`. `image` picks one of [`TINY`]; each op is a kind byte and its
/// arguments (missing bytes read as 0), at most 64 ops:
/// - 0 `field value:u64`: a superblock field set to `value` (truncated to the field width);
/// - 1 `field which`: a superblock field set to an interesting value (0, all ones, the image
///   length ± 1, another table's start, the start ± 1);
/// - 2..=5 `anchor off:u16 value`: a u8 / u16 / u32 / u64 written at `anchor + off`, where
///   the anchor is the image start, the superblock, or the start of one of its tables;
/// - 6 `anchor off:u16 bit`: one bit flipped there;
/// - 7 `anchor off:u16`: the image cut at `anchor + off`.
///
/// On the uncompressed image, table anchors land in inode and directory records directly.
pub fn mutate(data: &[u8]) {
    mutate_walk(data);
}

/// [`mutate`], returning what the walk saw (None: the patched image did not open).
pub fn mutate_walk(data: &[u8]) -> Option<Walked> {
    let (&pick, mut ops) = data.split_first()?;
    let (_, offset, base) = TINY[usize::from(pick) % TINY.len()];
    let at = offset as usize;
    let mut image = base.to_vec();
    let sb = &base[at..at + 96];
    let len = (base.len() - at) as u64;
    let mut anchors = vec![0u64, 96];
    for (field, _) in &SUPERBLOCK_FIELDS[12..] {
        let start = u64_at(sb, *field);
        if start < len {
            anchors.push(start);
        }
    }
    // The next `n` bytes of the ops, zero-filled past their end.
    let take = |ops: &mut &[u8], n: usize| -> Vec<u8> {
        let (now, rest) = ops.split_at(n.min(ops.len()));
        *ops = rest;
        let mut v = now.to_vec();
        v.resize(n, 0);
        v
    };
    for _ in 0..64 {
        if ops.is_empty() {
            break;
        }
        let kind = take(&mut ops, 1)[0];
        match kind % 8 {
            0 | 1 => {
                let (field, width) = SUPERBLOCK_FIELDS[usize::from(take(&mut ops, 1)[0]) % 18];
                let value = if kind % 8 == 0 {
                    u64_at(&take(&mut ops, 8), 0)
                } else {
                    let which = take(&mut ops, 1)[0];
                    let other = anchors[usize::from(which >> 3) % anchors.len()];
                    match which % 8 {
                        0 => 0,
                        1 => u64::MAX,
                        2 => len,
                        3 => len + 1,
                        4 => len - 1,
                        5 => other,
                        6 => other + 1,
                        _ => other.wrapping_sub(1),
                    }
                };
                let bytes = value.to_le_bytes();
                if let Some(dst) = image.get_mut(at + field..at + field + width) {
                    dst.copy_from_slice(&bytes[..width]);
                }
            }
            k => {
                let args = take(&mut ops, 3);
                let anchor = anchors[usize::from(args[0]) % anchors.len()];
                let pos = at + anchor as usize + usize::from(u16_at(&args, 1));
                if k == 7 {
                    image.truncate(pos.max(at));
                    continue;
                }
                let width = match k {
                    2 | 6 => 1,
                    3 => 2,
                    4 => 4,
                    _ => 8,
                };
                let value = take(&mut ops, width);
                if pos + width > image.len() {
                    continue;
                }
                if k == 6 {
                    image[pos] ^= 1 << (value[0] % 8);
                } else {
                    image[pos..pos + width].copy_from_slice(&value);
                }
            }
        }
    }
    open_and_exercise(&image, offset, salt(data))
}

// ---------------------------------------------------------------------------------------
// Seeds.
// ---------------------------------------------------------------------------------------

/// Seed inputs for `target`, derived from the tiny images: the images themselves, their
/// compressed metadata blocks, their metadata tables, and "no patch" for each image.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, &(name, offset, bytes)) in TINY.iter().enumerate() {
        let image = &bytes[offset as usize..];
        let compressor = u16_at(image, 20);
        let codec_byte = compressor.wrapping_sub(1) as u8;
        let block_log = u16_at(image, 22) as u8;
        let (inode_start, dir_start) = (u64_at(image, 64), u64_at(image, 72));
        match target {
            "image" => out.push((name.to_string(), bytes.to_vec())),
            "mutate" => out.push((name.to_string(), vec![i as u8])),
            "decompress" => {
                // Every compressed metadata block of the inode and directory tables.
                let mut pos = inode_start as usize;
                let mut n = 0;
                while pos + 2 < image.len() && (pos as u64) < u64_at(image, 48) {
                    let word = u16_at(image, pos);
                    let stored = usize::from(word & 0x7fff);
                    let Some(block) = image.get(pos + 2..pos + 2 + stored) else {
                        break;
                    };
                    if word & 0x8000 == 0 && stored > 0 {
                        let mut seed = vec![codec_byte, 1];
                        seed.extend_from_slice(block);
                        out.push((format!("{name}-block{n}"), seed));
                        n += 1;
                    }
                    pos += 2 + stored;
                }
            }
            "metadata" => {
                let mut seed = vec![codec_byte, block_log.wrapping_sub(12)];
                seed.extend(((dir_start - inode_start) as u32).to_le_bytes());
                seed.extend(u64_at(image, 32).to_le_bytes());
                seed.extend(u32_at(image, 4).to_le_bytes());
                seed.extend(u16_at(image, 26).to_le_bytes());
                seed.extend((i as u32).to_le_bytes());
                let end = u64_at(image, 40) as usize;
                seed.extend_from_slice(&image[inode_start as usize..end]);
                out.push((name.to_string(), seed));
            }
            _ => panic!("no fuzz target {target}"),
        }
    }
    out
}
