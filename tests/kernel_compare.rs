//! Every corpus image, read by the library, must answer exactly what the kernel's own
//! squashfs driver answers from a loop mount: the walk in readdir order, every `lstat`
//! field, symlink targets, xattrs, and the bytes (whole, and at odd offsets).

use std::fs::File;
use std::os::unix::fs::FileExt;

use e2e_tests::corpus::{images, Image};
use e2e_tests::skip::{needs, Need};
use e2e_tests::snapshot::{compare, from_archive, from_dir, Ignore};
use e2e_tests::sys::LoopMount;
use sqfs::{Archive, FileType, OpenOptions};

fn open(image: &Image) -> Archive {
    let file = File::open(&image.path).unwrap();
    Archive::open_file(
        file,
        &OpenOptions {
            offset: image.offset,
            ..OpenOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: open: {e}", image.name))
}

/// The image the kernel mounts in place of one it cannot (legacy lzma; `-nopad` images,
/// which a loop device cannot map): the same tree, built by the same tool, in gzip.
fn kernel_reference(image: &Image) -> &'static Image {
    let name = format!("{}-gzip", &image.name[..1]);
    images()
        .iter()
        .find(|i| i.name == name && i.builder == image.builder)
        .unwrap_or_else(|| panic!("no gzip reference image {name} for {}", image.name))
}

#[test]
fn library_matches_kernel_on_every_image() {
    if !needs(&[Need::Root]) {
        return;
    }
    let mut failures = Vec::new();
    for image in images() {
        let mounted = if !image.kernel_readable() {
            kernel_reference(image)
        } else {
            image
        };
        let mount = LoopMount::new(&mounted.path, mounted.offset).unwrap();
        let expected = from_dir(&mount.dir);
        let archive = open(image);
        let actual = from_archive(&archive).unwrap_or_else(|e| panic!("{}: walk: {e}", image.name));
        // Against another build of the tree, inode numbers and hard-link grouping may differ:
        // mksquashfs 4.5.1 was seen giving two hard-linked symlinks one inode in one build and
        // two in the next. Those images' own links are checked against unsquashfs in
        // extract_compare.rs.
        let ignore = if image.kernel_readable() {
            Ignore::default()
        } else {
            Ignore {
                ino: true,
                nlink: true,
                ..Ignore::default()
            }
        };
        if let Err(diff) = compare(&expected, &actual, ignore) {
            failures.push(format!("{}:\n{diff}", image.name));
        }
        if let Err(diff) = odd_reads(&archive, &mount.dir) {
            failures.push(format!("{}: {diff}", image.name));
        }
        eprintln!("{}: {} nodes match the kernel", image.name, actual.len());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Reads at offsets and lengths that straddle 4 KiB pages and block boundaries, the
/// library's answer against the kernel's `pread` on the same file.
fn odd_reads(archive: &Archive, mount: &std::path::Path) -> Result<(), String> {
    let bs = u64::from(archive.superblock().block_size);
    let mut checked = 0;
    for entry in walk_files(archive) {
        let (path, inode) = entry;
        let size = inode.size();
        if !(2..=64 << 20).contains(&size) {
            continue;
        }
        let kernel = File::open(mount.join(&path)).map_err(|e| format!("{path}: {e}"))?;
        let data = archive
            .file_data(&inode)
            .map_err(|e| format!("{path}: {e}"))?;
        let probes = [
            (0, 1),
            (1, 4095),
            (4095, 2),
            (bs - 1, 2),
            (bs.saturating_sub(7), bs + 14),
            (size / 2 - 1, 3),
            (size - 1, 10),
            (size, 5),
            (size + 100, 1),
            (size.saturating_sub(bs + 3), 2 * bs),
        ];
        for (offset, len) in probes {
            let mut want = vec![0u8; len as usize];
            let mut got = vec![0u8; len as usize];
            let n_want = read_full(&kernel, offset, &mut want);
            let n_got = archive
                .read_data(&data, offset, &mut got)
                .map_err(|e| format!("{path}@{offset}: {e}"))?;
            if n_want != n_got || want[..n_want] != got[..n_got] {
                return Err(format!("{path}: read of {len} at {offset}: kernel {n_want} bytes, library {n_got}, or bytes differ"));
            }
        }
        checked += 1;
    }
    if checked == 0 && archive.superblock().inode_count > 1 {
        return Err("no file was probed".into());
    }
    Ok(())
}

fn read_full(f: &File, offset: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let n = f.read_at(&mut buf[done..], offset + done as u64).unwrap();
        if n == 0 {
            break;
        }
        done += n;
    }
    done
}

fn walk_files(archive: &Archive) -> Vec<(String, sqfs::Inode)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), archive.root().unwrap())];
    while let Some((path, dir)) = stack.pop() {
        for entry in archive.read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let child = format!("{path}/{}", String::from_utf8_lossy(&entry.name));
            let inode = archive.entry_inode(&entry).unwrap();
            match inode.kind() {
                FileType::Directory => stack.push((child, inode)),
                FileType::File if entry.name.is_ascii() => {
                    out.push((child.trim_start_matches('/').to_string(), inode))
                }
                _ => {}
            }
        }
    }
    out
}

/// The largest xattr set the writer stores (sqfs/tests/writer.rs refuses one byte more of
/// names or values): 256 names of 255 bytes, 64 KiB to list with their NULs (Linux's
/// XATTR_LIST_MAX), and 256 distinct 64 KiB values. The kernel lists and reads it back as
/// our reader does.
#[test]
fn the_biggest_xattr_set_the_writer_stores_lists_in_the_kernel() {
    if !needs(&[Need::Root]) {
        return;
    }
    let mut set: Vec<sqfs::Xattr> = (0..256u32)
        .map(|i| {
            let prefix = ["user.", "trusted.", "security."][i as usize % 3];
            let name = format!("{prefix}{i:03}-{}", "n".repeat(255 - prefix.len() - 4));
            let value = (0..65536u32)
                .map(|j| (i * 7 + j * 13 % 251) as u8)
                .collect();
            sqfs::Xattr {
                name: name.into_bytes(),
                value,
            }
        })
        .collect();
    let image = std::env::temp_dir().join(format!("sqfs-kxattr-{}.sqfs", std::process::id()));
    let root = sqfs::Meta {
        permissions: 0o755,
        ..sqfs::Meta::default()
    };
    let mut w = sqfs::Writer::create(
        File::create(&image).unwrap(),
        &sqfs::WriteOptions::default(),
        root.clone(),
    )
    .unwrap();
    let meta = sqfs::Meta {
        permissions: 0o644,
        xattrs: set.clone(),
        ..root
    };
    let empty: &mut dyn std::io::Read = &mut std::io::empty();
    w.file(w.root(), b"full", meta, 0, sqfs::Content::Stream(empty))
        .unwrap();
    w.finish().unwrap();
    set.sort_by(|a, b| a.name.cmp(&b.name));
    let expected: Vec<(Vec<u8>, Vec<u8>)> = set.into_iter().map(|x| (x.name, x.value)).collect();

    let archive = Archive::open(&image).unwrap();
    let ours: Vec<(Vec<u8>, Vec<u8>)> = archive
        .xattrs(&archive.lookup_path("/full").unwrap())
        .unwrap()
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect();
    let mount = LoopMount::new(&image, 0).unwrap();
    let mut kernel = e2e_tests::sys::xattrs(&mount.dir.join("full"));
    kernel.sort();
    drop(mount);
    let _ = std::fs::remove_file(&image);
    assert_eq!(ours.len(), 256);
    assert!(ours == expected, "our reader differs from what was written");
    assert_eq!(kernel.len(), 256, "the kernel lists {} names", kernel.len());
    assert!(
        kernel == expected,
        "the kernel's xattrs differ from what was written"
    );
}
