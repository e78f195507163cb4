//! Hand-patched images that the reader must refuse (or, where the kernel recovers, still
//! read): repeated and out-of-order names, an unusable root, table indexes that do not end
//! where the next table starts, an empty xattr id table, a fragment index past the table,
//! over-long names, a damaged directory index. Each patch is made on a committed tiny image
//! (testdata/tiny) or on an image mksquashfs builds here, with uncompressed metadata so
//! that names and inodes can be patched in place.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use sqfs::internals::{self, DirInfo, InodeBody};
use sqfs::{Archive, Error, Inode, MetaRef, OpenOptions};

fn tiny(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tiny")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Opens `bytes` as an image (written to a file of its own).
fn open(bytes: &[u8]) -> sqfs::Result<Archive> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sqfs-strict-{}-{n}.img", std::process::id()));
    File::create(&path).unwrap().write_all(bytes).unwrap();
    let file = File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    Archive::open_file(file, &OpenOptions::default())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

const ID_TABLE: usize = 48;
const XATTR_TABLE: usize = 56;
const INODE_TABLE: usize = 64;
const DIR_TABLE: usize = 72;
const FRAGMENT_TABLE: usize = 80;
const EXPORT_TABLE: usize = 88;
const BYTES_USED: usize = 40;

/// Image position of byte `k` of the metadata stream that starts at `at` in the table at
/// `table` (for tables stored uncompressed: each 8 KiB block behind a 2-byte header).
fn meta_pos(image: &[u8], table: u64, at: MetaRef, k: usize) -> usize {
    let mut block = (table + at.block) as usize;
    let mut within = usize::from(at.offset) + k;
    loop {
        let word = u16::from_le_bytes([image[block], image[block + 1]]);
        assert!(
            word & 0x8000 != 0,
            "metadata block at {block} is compressed"
        );
        let len = usize::from(word & 0x7fff);
        if within < len {
            return block + 2 + within;
        }
        within -= len;
        block += 2 + len;
    }
}

/// Writes `bytes` into the metadata stream at `at` + `k` (across block headers).
fn patch_meta(image: &mut [u8], table: u64, at: MetaRef, k: usize, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        let pos = meta_pos(image, table, at, k + i);
        image[pos] = b;
    }
}

fn dir_info(inode: &Inode) -> &DirInfo {
    match internals::body(inode) {
        InodeBody::Directory(d) => d,
        _ => panic!("not a directory"),
    }
}

/// Renames the entry `from` of directory `dir` to `to` (same length) in an image whose
/// directory table is uncompressed; returns the entry's cookie.
fn rename_entry(image: &mut [u8], dir: &str, from: &[u8], to: &[u8]) -> u64 {
    assert_eq!(from.len(), to.len());
    let a = open(image).unwrap();
    let d = a.lookup_path(dir).unwrap();
    let entry = a
        .read_dir(&d)
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.name == from)
        .unwrap();
    let listing = dir_info(&d).listing;
    let at = entry.cookie as usize - from.len();
    let table = a.superblock().directory_table_start;
    patch_meta(image, table, listing, at, to);
    entry.cookie
}

fn corrupt_text(r: sqfs::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Corrupt(msg)) => msg,
        other => panic!("expected a corrupt-image error, got {other:?}"),
    }
}

/// The corrupt-image error an open gave.
fn open_error(r: sqfs::Result<Archive>) -> String {
    corrupt_text(r.map(|_| "opened"))
}

fn listing(a: &Archive, dir: &Inode) -> sqfs::Result<Vec<Vec<u8>>> {
    a.read_dir(dir)?.map(|e| e.map(|e| e.name)).collect()
}

#[test]
fn a_repeated_name_is_refused_by_listings_lookups_and_resumed_listings() {
    let good = tiny("tiny-uncompressed.sqfs");
    let mut bad = good.clone();
    let first = {
        let a = open(&good).unwrap();
        let root = a.root().unwrap();
        a.read_dir(&root)
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.name == b"hardlink-1")
            .unwrap()
            .cookie
    };
    rename_entry(&mut bad, "/", b"hardlink-2", b"hardlink-1");
    let a = open(&bad).unwrap();
    let root = a.root().unwrap();
    let msg = corrupt_text(listing(&a, &root));
    assert!(
        msg.contains(&format!("directory {}", root.number()))
            && msg.contains("\"hardlink-1\" repeats"),
        "{msg}"
    );
    // A lookup of the name reads past it and sees the repeat.
    corrupt_text(a.lookup_entry(&root, b"hardlink-1"));
    // A listing resumed right after the first of the two names: the first entry it
    // returns would be the repeat.
    let mut resumed = a.read_dir_from(&root, first).unwrap();
    corrupt_text(resumed.next().unwrap());
    // Names before the repeat still list and look up.
    assert!(a.lookup(&root, b"hello.txt").is_err());
    assert!(a.lookup(&root, b"fifo").is_ok());
}

#[test]
fn an_out_of_order_name_is_refused() {
    let mut bad = tiny("tiny-uncompressed.sqfs");
    rename_entry(&mut bad, "/", b"hardlink-2", b"hardlink-0");
    let a = open(&bad).unwrap();
    let root = a.root().unwrap();
    let msg = corrupt_text(listing(&a, &root));
    assert!(
        msg.contains("\"hardlink-0\" is out of order after \"hardlink-1\""),
        "{msg}"
    );
    corrupt_text(a.lookup_entry(&root, b"hardlink-1"));
    corrupt_text(a.lookup_entry(&root, b"hello.txt"));
    // In a subdirectory too, and the error names that directory.
    let mut bad = tiny("tiny-uncompressed.sqfs");
    rename_entry(&mut bad, "/dir", b"nested.txt", b"zzzzzz.txt");
    let a = open(&bad).unwrap();
    let dir = a.lookup_path("/dir").unwrap();
    let msg = corrupt_text(listing(&a, &dir));
    assert!(
        msg.contains(&format!("directory {}:", dir.number())) && msg.contains("\"sub\""),
        "{msg}"
    );
}

#[test]
fn names_with_a_slash_or_a_nul_are_refused() {
    for bad_name in [&b"fi/o"[..], b"fi\0o"] {
        let mut bad = tiny("tiny-uncompressed.sqfs");
        rename_entry(&mut bad, "/", b"fifo", bad_name);
        let a = open(&bad).unwrap();
        let root = a.root().unwrap();
        let msg = corrupt_text(listing(&a, &root));
        assert!(msg.contains("bad directory entry name"), "{msg}");
    }
}

#[test]
fn an_over_long_name_is_name_too_long() {
    let a = open(&tiny("tiny-gzip.sqfs")).unwrap();
    let root = a.root().unwrap();
    let long = vec![b'a'; 257];
    let err = a.lookup_entry(&root, &long).unwrap_err();
    assert!(matches!(err, Error::NameTooLong), "{err:?}");
    assert_eq!(err.errno(), libc::ENAMETOOLONG);
    assert!(matches!(a.lookup(&root, &long), Err(Error::NameTooLong)));
    assert!(a.lookup_entry(&root, &long[..256]).unwrap().is_none());
    for absent in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
        assert!(a.lookup_entry(&root, absent).unwrap().is_none());
    }
}

/// The image position of the inode `path` (uncompressed inode table).
fn inode_pos(image: &[u8], path: &str) -> (usize, Inode) {
    let a = open(image).unwrap();
    let inode = a.lookup_path(path).unwrap();
    let pos = meta_pos(image, le64(image, INODE_TABLE), inode.reference(), 0);
    (pos, inode)
}

#[test]
fn a_root_that_cannot_be_served_is_refused_at_open() {
    let good = tiny("tiny-uncompressed.sqfs");
    let a = open(&good).unwrap();
    let root = a.root().unwrap();
    // The id table's only block (this image compresses it) stored as an empty block: the
    // root's owners cannot be resolved, so no `stat` of it could be answered.
    let mut bad = good.clone();
    let id_block = le64(&good, le64(&good, ID_TABLE) as usize) as usize;
    bad[id_block..id_block + 2].copy_from_slice(&0x8000u16.to_le_bytes());
    let msg = open_error(open(&bad));
    assert!(msg.contains("owners"), "{msg}");
    // The root's listing in a block whose header is broken: it could never be listed.
    let mut bad = good.clone();
    let listing = dir_info(&root).listing;
    let block = (le64(&good, DIR_TABLE) + listing.block) as usize;
    bad[block..block + 2].copy_from_slice(&0x8000u16.to_le_bytes());
    let msg = open_error(open(&bad));
    assert!(msg.contains("root directory cannot be listed"), "{msg}");
    // An empty root has no listing to read: still fine.
    open(&tiny("tiny-empty.sqfs")).unwrap();
}

/// `image` with `n` zero bytes inserted at `at`, every absolute position past `at` moved
/// (the superblock's table starts and the lookup tables' block positions); metadata
/// references are relative to their tables and stay as they are.
fn insert_gap(image: &[u8], at: usize, n: u64) -> Vec<u8> {
    let mut out = image[..at].to_vec();
    out.resize(at + n as usize, 0);
    out.extend_from_slice(&image[at..]);
    let moved = |v: u64| {
        if v != u64::MAX && v >= at as u64 {
            v + n
        } else {
            v
        }
    };
    let sb = image[..96].to_vec();
    for field in [
        BYTES_USED,
        ID_TABLE,
        XATTR_TABLE,
        FRAGMENT_TABLE,
        EXPORT_TABLE,
    ] {
        put64(&mut out, field, moved(le64(&sb, field)));
    }
    // Each index: (superblock field, entry size, entry count, bytes before the index).
    let inodes = u64::from(u32::from_le_bytes(sb[4..8].try_into().unwrap()));
    let fragments = u64::from(u32::from_le_bytes(sb[16..20].try_into().unwrap()));
    let ids = u64::from(u16::from_le_bytes(sb[26..28].try_into().unwrap()));
    let mut indexes = vec![(ID_TABLE, 4, ids, 0), (FRAGMENT_TABLE, 16, fragments, 0)];
    indexes.push((EXPORT_TABLE, 8, inodes, 0));
    let xattr_start = le64(&sb, XATTR_TABLE);
    if xattr_start != u64::MAX {
        let count = u64::from(u32::from_le_bytes(
            image[xattr_start as usize + 8..xattr_start as usize + 12]
                .try_into()
                .unwrap(),
        ));
        indexes.push((XATTR_TABLE, 16, count, 16));
        let header = le64(&out, XATTR_TABLE) as usize;
        let kv = le64(&out, header);
        put64(&mut out, header, moved(kv));
    }
    for (field, size, count, skip) in indexes {
        let start = le64(&out, field);
        if start == u64::MAX || count == 0 {
            continue;
        }
        for i in 0..(count * size).div_ceil(8192) {
            let pos = (start + skip + 8 * i) as usize;
            let v = le64(&out, pos);
            put64(&mut out, pos, moved(v));
        }
    }
    out
}

/// Where the index of the table whose start is in superblock field `field` ends.
fn index_end(image: &[u8], field: usize, entry_size: u64, count: u64) -> usize {
    (le64(image, field) + (count * entry_size).div_ceil(8192) * 8) as usize
}

#[test]
fn table_indexes_end_exactly_where_the_next_table_starts() {
    let good = tiny("tiny-gzip.sqfs");
    let a = open(&good).unwrap();
    let sb = a.superblock().clone();
    let hello = a.lookup_path("/hello.txt").unwrap();
    let expect = a.read_file(&hello, 100).unwrap();
    assert!(sb.export_table_start != u64::MAX && sb.xattr_id_table_start != u64::MAX);
    // The gap itself is harmless: the same image with a gap in the middle of the inode
    // table's data blocks' neighbourhood (before the inode table) still reads.
    let shifted = insert_gap(&good, sb.inode_table_start as usize, 0);
    assert_eq!(shifted, good, "insert_gap of nothing changes nothing");

    // 8 bytes after the export index, before the id blocks: the kernel refuses the export
    // table (squashfs_read_inode_lookup_table()).
    let gap = index_end(&good, EXPORT_TABLE, 8, u64::from(sb.inode_count));
    let msg = open_error(open(&insert_gap(&good, gap, 8)));
    assert!(msg.contains("export table index"), "{msg}");
    // After the id index, before the xattr key/value blocks.
    let gap = index_end(&good, ID_TABLE, 4, u64::from(sb.id_count));
    let msg = open_error(open(&insert_gap(&good, gap, 8)));
    assert!(msg.contains("id table index"), "{msg}");
    // After the xattr id index: bytes_used claims 8 more bytes than the index needs.
    let mut bad = good.clone();
    put64(&mut bad, BYTES_USED, sb.bytes_used + 8);
    let msg = open_error(open(&bad));
    assert!(msg.contains("xattr id table index"), "{msg}");
    // The kernel only asks the fragment index to end by the next table
    // (squashfs_read_fragment_index_table()): a gap after it is accepted, and every file
    // still reads.
    let gap = index_end(&good, FRAGMENT_TABLE, 16, u64::from(sb.fragment_count));
    let loose = insert_gap(&good, gap, 8);
    let a = open(&loose).unwrap();
    assert_eq!(
        a.read_file(&a.lookup_path("/hello.txt").unwrap(), 100)
            .unwrap(),
        expect
    );
    assert_eq!(
        a.xattrs(&hello).unwrap(),
        open(&good).unwrap().xattrs(&hello).unwrap()
    );

    // Without xattrs, the id index ends at bytes_used.
    let good = tiny("tiny-gen-xz.sqfs");
    let mut bad = good.clone();
    put64(&mut bad, BYTES_USED, le64(&good, BYTES_USED) + 8);
    bad.extend([0; 8]);
    let msg = open_error(open(&bad));
    assert!(msg.contains("id table index"), "{msg}");
}

#[test]
fn an_xattr_id_table_without_entries_is_refused() {
    let good = tiny("tiny-gzip.sqfs");
    let header = le64(&good, XATTR_TABLE) as usize;
    let mut bad = good.clone();
    put32(&mut bad, header + 8, 0);
    let msg = open_error(open(&bad));
    assert!(msg.contains("xattr id table with no entries"), "{msg}");
}

#[test]
fn a_fragment_index_past_the_table_is_refused_even_without_a_tail() {
    let good = tiny("tiny-uncompressed.sqfs");
    let fragments = open(&good).unwrap().superblock().fragment_count;
    let (pos, inode) = inode_pos(&good, "/empty");
    assert_eq!((inode.size(), internals::is_extended(&inode)), (0, false));
    // Basic file inode: the fragment index is at byte 20.
    let mut bad = good.clone();
    put32(&mut bad, pos + 20, fragments);
    let a = open(&bad).unwrap();
    let msg = corrupt_text(a.lookup_path("/empty"));
    assert!(
        msg.contains(&format!("fragment {fragments} of {fragments}")),
        "{msg}"
    );
    // A fragment index in range on a file without a tail is what the kernel ignores.
    let mut odd = good.clone();
    put32(&mut odd, pos + 20, 0);
    let a = open(&odd).unwrap();
    assert_eq!(a.read_file_at("/empty", 10).unwrap(), b"");
}

#[test]
fn read_file_is_bounded_by_the_callers_limit() {
    let a = open(&tiny("tiny-gzip.sqfs")).unwrap();
    let sparse = a.lookup_path("/sparse.bin").unwrap();
    let whole = a.read_file(&sparse, 300_000).unwrap();
    assert_eq!(whole.len(), 300_000);
    assert!(whole.starts_with(b"sparse head\n") && whole[5000..290_000].iter().all(|&b| b == 0));
    let err = a.read_file(&sparse, 299_999).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooBig {
                size: 300_000,
                limit: 299_999
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.errno(), libc::EFBIG);
    assert!(matches!(a.read_file_at("/dir", 10), Err(Error::NotAFile)));
    assert!(matches!(
        a.read_file_at("/no/such", 10),
        Err(Error::NotFound)
    ));

    // A hostile inode: a 2^62-byte file (the size field of an extended file inode, or a
    // basic one's 4 GiB) is refused before anything is allocated.
    let good = tiny("tiny-uncompressed.sqfs");
    let (pos, inode) = inode_pos(&good, "/setuid");
    assert!(!internals::is_extended(&inode));
    let mut bad = good.clone();
    // Basic file inode: file_size (u32) at byte 28.
    put32(&mut bad, pos + 28, u32::MAX);
    let a = open(&bad).unwrap();
    let err = a.read_file_at("/setuid", 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooBig {
                size: 0xFFFF_FFFF,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// A directory with an index (built by mksquashfs with uncompressed metadata).
// ---------------------------------------------------------------------------------------

/// Names of the big directory: 300 hard links to one file, 120-byte names, so the
/// listing spans several metadata blocks (and the inode table stays one block).
fn big_name(i: usize) -> Vec<u8> {
    format!("{i:04}-{}", "n".repeat(115)).into_bytes()
}

fn big_dir_image() -> Option<Vec<u8>> {
    if Command::new("mksquashfs").arg("-version").output().is_err() {
        eprintln!("SKIPPED: mksquashfs not installed");
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("CH_TEST_REQUIRE_ALL").is_none(),
            "every test must run here (CI or CH_TEST_REQUIRE_ALL), and this one needs mksquashfs (squashfs-tools)"
        );
        return None;
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sqfs-strict-big-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tree = dir.join("tree/big");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join(std::str::from_utf8(&big_name(0)).unwrap()), "x").unwrap();
    for i in 1..300 {
        std::fs::hard_link(
            tree.join(std::str::from_utf8(&big_name(0)).unwrap()),
            tree.join(std::str::from_utf8(&big_name(i)).unwrap()),
        )
        .unwrap();
    }
    let image = dir.join("big.sqfs");
    let status = Command::new("mksquashfs")
        .arg(dir.join("tree"))
        .arg(&image)
        .args(["-noappend", "-quiet", "-no-progress", "-noI", "-noD"])
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&image).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    Some(bytes)
}

/// The index points of `/big`: (listing offset, first name, image position of the entry).
fn index_points(image: &[u8]) -> Vec<(u64, Vec<u8>, usize)> {
    let a = open(image).unwrap();
    let big = a.lookup_path("/big").unwrap();
    let info = dir_info(&big);
    assert!(info.index_count >= 3, "{} index entries", info.index_count);
    // Index entries follow the 40-byte extended directory inode.
    let table = le64(image, INODE_TABLE);
    let mut points = Vec::new();
    let mut k = 40;
    for _ in 0..info.index_count {
        let word = |k: usize| {
            let b: Vec<u8> = (0..4)
                .map(|i| image[meta_pos(image, table, big.reference(), k + i)])
                .collect();
            u32::from_le_bytes(b.try_into().unwrap())
        };
        let offset = u64::from(word(k));
        let len = word(k + 8) as usize + 1;
        let name: Vec<u8> = (0..len)
            .map(|i| image[meta_pos(image, table, big.reference(), k + 12 + i)])
            .collect();
        points.push((offset, name, meta_pos(image, table, big.reference(), k)));
        k += 12 + len;
    }
    points
}

#[test]
fn a_repeat_across_an_index_point_is_seen_by_lookups_and_resumed_listings() {
    let Some(good) = big_dir_image() else { return };
    let points = index_points(&good);
    let a = open(&good).unwrap();
    let big = a.lookup_path("/big").unwrap();
    let entries: Vec<_> = a.read_dir(&big).unwrap().map(Result::unwrap).collect();
    assert_eq!(entries.len(), 300);
    let names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, (0..300).map(big_name).collect::<Vec<_>>());
    // An index point that is not the first header: the entry before it ends at its offset.
    let (offset, first, _) = points.iter().find(|p| p.0 > 0).unwrap().clone();
    let i = entries.iter().position(|e| e.name == first).unwrap();
    assert_eq!(entries[i - 1].cookie, offset, "an index point is a header");
    let before = entries[i - 1].name.clone();

    // The first entry after the point renamed to the entry before it, and the index's
    // first name for the point with it (so the index still agrees with the listing).
    let mut bad = good.clone();
    let dir_table = le64(&good, DIR_TABLE);
    let listing = dir_info(&big).listing;
    patch_meta(
        &mut bad,
        dir_table,
        listing,
        offset as usize + 12 + 8,
        &before,
    );
    let index_name_at = points.iter().find(|p| p.0 == offset).unwrap().2 + 12;
    let at = le64(&good, INODE_TABLE);
    let big_ref = big.reference();
    let k0 = index_name_at - meta_pos(&good, at, big_ref, 0);
    patch_meta(&mut bad, at, big_ref, k0, &before);

    let a = open(&bad).unwrap();
    let big = a.lookup_path("/big").unwrap();
    let msg = corrupt_text(listing_of(&a, &big));
    assert!(msg.contains("repeats"), "{msg}");
    // Resumed right after the first of the two: the index point is at that very cookie.
    let mut resumed = a.read_dir_from(&big, offset).unwrap();
    corrupt_text(resumed.next().unwrap());
    corrupt_text(a.lookup_entry(&big, &before));
}

fn listing_of(a: &Archive, dir: &Inode) -> sqfs::Result<Vec<Vec<u8>>> {
    listing(a, dir)
}

#[test]
fn a_damaged_directory_index_only_costs_speed() {
    let Some(good) = big_dir_image() else { return };
    let points = index_points(&good);
    let a = open(&good).unwrap();
    let big = a.lookup_path("/big").unwrap();
    assert_eq!(dir_info(&big).index_count as usize, points.len());
    let last = big_name(299);
    let probe = |image: &[u8]| -> Vec<Vec<u8>> {
        let a = open(image).unwrap();
        let big = a.lookup_path("/big").unwrap();
        // Every name is found, the absent ones are not, resumed listings continue right.
        for i in [0, 1, 150, 298, 299] {
            let found = a.lookup_entry(&big, &big_name(i)).unwrap();
            assert_eq!(found.map(|e| e.name), Some(big_name(i)), "name {i}");
        }
        assert!(a.lookup_entry(&big, b"9999").unwrap().is_none());
        let all: Vec<_> = a.read_dir(&big).unwrap().map(Result::unwrap).collect();
        for e in all.iter().step_by(37) {
            let next = a.read_dir_from(&big, e.cookie).unwrap().next();
            let next = next.map(|n| n.unwrap().name);
            let want = all
                .iter()
                .find(|x| x.cookie > e.cookie)
                .map(|x| x.name.clone());
            assert_eq!(next, want);
        }
        all.into_iter().map(|e| e.name).collect()
    };
    let names = probe(&good);
    assert_eq!(names.last(), Some(&last));
    drop((a, big));
    let (_, _, second) = points[1].clone();
    // The second index entry's name length beyond SQUASHFS_NAME_LEN: the kernel stops
    // reading the index there.
    let mut bad = good.clone();
    put32(&mut bad, second + 8, 0xFFFF);
    assert_eq!(probe(&bad), names);
    // Its listing offset moved into the middle of an entry: the point's header does not
    // begin with the name the index gives.
    let mut bad = good.clone();
    let offset = u32::from_le_bytes(good[second..second + 4].try_into().unwrap());
    put32(&mut bad, second, offset + 8);
    assert_eq!(probe(&bad), names);
    // Past the listing's end.
    let mut bad = good.clone();
    put32(&mut bad, second, u32::MAX - 1);
    assert_eq!(probe(&bad), names);
    // A first name that sorts wrong (after everything): lookups stop using the index there.
    let mut bad = good.clone();
    bad[second + 12] = b'9';
    assert_eq!(probe(&bad), names);
}
