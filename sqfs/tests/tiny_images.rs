//! One test per on-disk structure, on the tiny committed images in `testdata/tiny/`
//! (made by `testdata/build-tiny.sh`, whose tree these facts come from).

use std::fs::File;
use std::path::PathBuf;

use sqfs::internals::{self, InodeBody};
use sqfs::{Archive, Error, FileType, OpenOptions};

/// The mtime every entry of the tiny tree has (2009-02-13 23:31:30 UTC).
const T: u32 = 1_234_567_890;

fn tiny(name: &str) -> Archive {
    open_at(name, 0).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn open_at(name: &str, offset: u64) -> sqfs::Result<Archive> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tiny")
        .join(name);
    Archive::open_file(
        File::open(path).unwrap(),
        &OpenOptions {
            offset,
            ..OpenOptions::default()
        },
    )
}

fn read_all(a: &Archive, path: &str) -> Vec<u8> {
    let inode = a.lookup_path(path).unwrap();
    let mut buf = vec![0u8; inode.size() as usize + 10];
    let n = a.read_at(&inode, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

const CODEC_IMAGES: [&str; 8] = [
    "tiny-gzip.sqfs",
    "tiny-gzip-4k.sqfs",
    "tiny-lzma.sqfs",
    "tiny-lzo.sqfs",
    "tiny-xz.sqfs",
    "tiny-lz4.sqfs",
    "tiny-zstd.sqfs",
    "tiny-uncompressed.sqfs",
];

#[test]
fn superblock_fields() {
    let a = tiny("tiny-gzip.sqfs");
    let sb = a.superblock();
    assert_eq!(sb.compression.name(), "gzip");
    assert_eq!((sb.block_size, sb.block_log), (131072, 17));
    assert!(sb.fragment_count >= 1);
    assert_eq!(tiny("tiny-gzip-4k.sqfs").superblock().block_size, 4096);
    assert!(tiny("tiny-uncompressed.sqfs")
        .superblock()
        .has(sqfs::flags::UNCOMPRESSED_DATA));
}

#[test]
fn every_codec_reads_the_same_bytes() {
    let blocks: Vec<u8> = b"block pattern 0123456789 abcdefghijklmnopqrstuvwxyz\n"
        .iter()
        .copied()
        .cycle()
        .take(12388)
        .collect();
    for name in CODEC_IMAGES {
        let a = tiny(name);
        assert_eq!(read_all(&a, "/hello.txt"), b"Hello, SquashFS!\n", "{name}");
        assert_eq!(read_all(&a, "/blocks.bin"), blocks, "{name}");
        assert_eq!(read_all(&a, "/dir/sub/deeper.txt"), b"deeper\n", "{name}");
    }
}

#[test]
fn xz_blocks_with_every_bcj_filter_decode() {
    // Each file holds blocks that mksquashfs compressed with one BCJ filter; a wrong filter
    // fails the xz stream's CRC, so a full read is the check.
    let a = tiny("tiny-xz-bcj.sqfs");
    let mut total = 0;
    for entry in a.read_dir(&a.root().unwrap()).unwrap() {
        let inode = a.entry_inode(&entry.unwrap()).unwrap();
        if inode.kind() == FileType::File {
            let mut buf = vec![0u8; inode.size() as usize];
            assert_eq!(a.read_at(&inode, 0, &mut buf).unwrap(), buf.len());
            total += 1;
        }
    }
    assert!(total >= 6, "{total} files");
}

#[test]
fn inode_types_modes_owners_and_times() {
    let a = tiny("tiny-gzip.sqfs");
    let expect = [
        ("/hello.txt", FileType::File, 0o100644, 1000, 1000),
        ("/dir", FileType::Directory, 0o040755, 1001, 1002),
        ("/symlink", FileType::Symlink, 0o120777, 0, 0),
        ("/fifo", FileType::Fifo, 0o010644, 0, 0),
        ("/socket", FileType::Socket, 0o140755, 0, 0),
        ("/chr-null", FileType::CharDevice, 0o020666, 0, 0),
        ("/blk", FileType::BlockDevice, 0o060660, 0, 6),
        ("/setuid", FileType::File, 0o104755, 0, 0),
        ("/empty-dir", FileType::Directory, 0o040700, 1000, 1000),
    ];
    for (path, kind, mode, uid, gid) in expect {
        let inode = a.lookup_path(path).unwrap();
        let attr = a.attr(&inode).unwrap();
        assert_eq!(inode.kind(), kind, "{path}");
        assert_eq!(
            (attr.mode, attr.uid, attr.gid, attr.mtime),
            (mode, uid, gid, T),
            "{path}"
        );
    }
}

#[test]
fn device_numbers_decode_like_the_kernel() {
    let a = tiny("tiny-gzip.sqfs");
    assert_eq!(a.lookup_path("/chr-null").unwrap().device(), Some((1, 3)));
    assert_eq!(a.lookup_path("/blk").unwrap().device(), Some((8, 1)));
    let max = a.lookup_path("/chr-max").unwrap();
    assert_eq!(max.device(), Some((4095, 1_048_575)));
    assert_eq!(max.rdev(), libc::makedev(4095, 1_048_575));
}

#[test]
fn directories_list_sorted_and_resume_at_cookies() {
    let a = tiny("tiny-gzip.sqfs");
    let root = a.root().unwrap();
    let names: Vec<Vec<u8>> = a
        .read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(
        names.contains(&b"hello.txt".to_vec()) && names.len() == 17,
        "{} entries",
        names.len()
    );
    let entries: Vec<_> = a.read_dir(&root).unwrap().map(|e| e.unwrap()).collect();
    for (i, e) in entries.iter().enumerate() {
        let rest: Vec<_> = a
            .read_dir_from(&root, e.cookie)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(rest.as_slice(), &entries[i + 1..]);
    }
    // Directory sizes are the stored ones (listing + 3), as the kernel reports them.
    assert_eq!(
        a.attr(&a.lookup_path("/empty-dir").unwrap()).unwrap().size,
        3
    );
    assert_eq!(
        a.read_dir(&a.lookup_path("/empty-dir").unwrap())
            .unwrap()
            .count(),
        0
    );
    assert_eq!(a.attr(&root).unwrap().size, 274);
}

#[test]
fn lookups_and_their_errors() {
    let a = tiny("tiny-gzip.sqfs");
    assert!(matches!(a.lookup_path("/nope"), Err(Error::NotFound)));
    assert!(matches!(
        a.lookup_path("/hello.txt/x"),
        Err(Error::NotADirectory)
    ));
    let file = a.lookup_path("/hello.txt").unwrap();
    assert!(matches!(a.read_link(&file), Err(Error::NotASymlink)));
    assert!(matches!(
        a.read_at(&a.root().unwrap(), 0, &mut [0; 4]),
        Err(Error::NotAFile)
    ));
    assert_eq!(
        a.lookup_path("dir/sub/deeper.txt").unwrap().kind(),
        FileType::File
    );
}

#[test]
fn symlink_targets() {
    let a = tiny("tiny-gzip.sqfs");
    for (path, target) in [
        ("/symlink", "hello.txt"),
        ("/dangling", "does/not/exist"),
        ("/dir-link", "dir"),
    ] {
        let inode = a.lookup_path(path).unwrap();
        assert_eq!(a.read_link(&inode).unwrap(), target.as_bytes());
        assert_eq!(inode.size(), target.len() as u64);
    }
}

#[test]
fn hard_links_share_one_inode() {
    let a = tiny("tiny-gzip.sqfs");
    let one = a.lookup_path("/hardlink-1").unwrap();
    let two = a.lookup_path("/hardlink-2").unwrap();
    assert_eq!(one.number(), two.number());
    assert_eq!(one.reference(), two.reference());
    assert_eq!(a.attr(&one).unwrap().nlink, 2);
    assert_eq!(
        a.attr(&a.lookup_path("/hello.txt").unwrap()).unwrap().nlink,
        1
    );
}

#[test]
fn sparse_files_read_holes_as_zeros() {
    for name in ["tiny-gzip.sqfs", "tiny-gzip-4k.sqfs"] {
        let a = tiny(name);
        let data = read_all(&a, "/sparse.bin");
        assert_eq!(data.len(), 300_000);
        assert!(data[..5000].starts_with(b"sparse head\n"));
        assert!(
            data[5000..290_000].iter().all(|&b| b == 0),
            "{name}: hole not zero"
        );
        assert!(data[290_000..].starts_with(b"sparse tail\n"));
    }
    // With 4 KiB blocks most of the hole is stored as size-0 blocks.
    let a = tiny("tiny-gzip-4k.sqfs");
    let data = a.file_data(&a.lookup_path("/sparse.bin").unwrap()).unwrap();
    let holes = (0..data.block_count()).filter(|&i| data.is_hole(i)).count();
    assert!(holes > 60, "{holes} holes");
}

#[test]
fn file_tails_come_from_fragments() {
    let a = tiny("tiny-gzip.sqfs");
    let inode = a.lookup_path("/hello.txt").unwrap();
    match internals::body(&inode) {
        InodeBody::File(f) => {
            assert!(f.fragment.is_some());
            assert_eq!(f.block_count, 0);
        }
        other => panic!("{other:?}"),
    }
    // Reads past the end and straddling it.
    let mut buf = [0u8; 8];
    assert_eq!(a.read_at(&inode, 13, &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"FS!\n");
    assert_eq!(a.read_at(&inode, 17, &mut buf).unwrap(), 0);
    assert_eq!(a.read_at(&inode, 1 << 40, &mut buf).unwrap(), 0);
}

#[test]
fn xattrs_with_prefixes_and_long_values() {
    let a = tiny("tiny-gzip.sqfs");
    let hello = a.lookup_path("/hello.txt").unwrap();
    let xattrs = a.xattrs(&hello).unwrap();
    let names: Vec<&[u8]> = xattrs.iter().map(|x| x.name.as_slice()).collect();
    assert!(names.contains(&&b"user.greeting"[..]) && names.contains(&&b"user.long"[..]));
    assert_eq!(a.xattr(&hello, b"user.greeting").unwrap(), b"hello");
    assert_eq!(a.xattr(&hello, b"user.long").unwrap(), vec![b'x'; 300]);
    assert!(matches!(a.xattr(&hello, b"user.none"), Err(Error::NoXattr)));
    assert_eq!(
        a.xattr(&a.lookup_path("/dir").unwrap(), b"user.dir")
            .unwrap(),
        b"on a directory"
    );
    assert!(a
        .xattrs(&a.lookup_path("/empty").unwrap())
        .unwrap()
        .is_empty());
}

#[test]
fn export_table_maps_numbers_to_inodes() {
    let a = tiny("tiny-gzip.sqfs");
    assert!(a.has_export_table());
    let mut stack = vec![a.root().unwrap()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for e in a.read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let inode = a.entry_inode(&e).unwrap();
            let by_number = a.inode_by_number(inode.number()).unwrap();
            assert_eq!(by_number.reference(), inode.reference());
            seen += 1;
            if inode.is_dir() {
                stack.push(inode);
            }
        }
    }
    assert!(seen >= 20);
    assert!(a.inode_by_number(0).is_err());
    assert!(a.inode_by_number(a.superblock().inode_count + 1).is_err());
}

#[test]
fn ids_resolve_through_the_id_table() {
    let a = tiny("tiny-gzip.sqfs");
    // 0, 6, 1000, 1001, 1002: at least five distinct ids.
    assert!(a.superblock().id_count >= 5);
    let dir = a.attr(&a.lookup_path("/dir").unwrap()).unwrap();
    assert_eq!((dir.uid, dir.gid), (1001, 1002));
}

#[test]
fn images_at_an_offset() {
    let a = open_at("tiny-offset-8k.sqfs", 8192).unwrap();
    assert_eq!(read_all(&a, "/hello.txt"), b"Hello, SquashFS!\n");
    assert!(matches!(
        open_at("tiny-offset-8k.sqfs", 0),
        Err(Error::BadMagic)
    ));
    assert!(open_at("tiny-offset-8k.sqfs", 4096).is_err());
}

#[test]
fn empty_and_gensquashfs_images() {
    let a = tiny("tiny-empty.sqfs");
    assert_eq!(a.read_dir(&a.root().unwrap()).unwrap().count(), 0);
    let g = tiny("tiny-gen-xz.sqfs");
    assert_eq!(read_all(&g, "/hello.txt"), b"Hello, SquashFS!\n");
}

#[test]
fn many_threads_share_one_archive() {
    let a = tiny("tiny-gzip-4k.sqfs");
    let expected = read_all(&a, "/blocks.bin");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    assert_eq!(read_all(&a, "/blocks.bin"), expected);
                }
            });
        }
    });
}
