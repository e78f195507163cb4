//! A file tree as a user sees it, node by node in readdir order, from a directory on disk
//! or from an `sqfs::Archive`.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::Hasher;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use sqfs::{Archive, FileType, Inode};

/// Files larger than this are compared in sampled windows, not whole: the corpus holds a
/// 4.5 GiB sparse file in every image.
const WHOLE_FILE_LIMIT: u64 = 256 << 20;
const WINDOW: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: Vec<u8>,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub rdev: u64,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub digest: Option<u64>,
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// The offsets a file's digest covers: all of it, or 1 MiB windows spread over it plus its
/// last MiB and the bytes around 4 GiB (where 32-bit offsets would wrap).
pub fn windows(size: u64) -> Vec<(u64, u64)> {
    if size <= WHOLE_FILE_LIMIT {
        return vec![(0, size)];
    }
    let mut w: Vec<(u64, u64)> = (0..64).map(|k| (k * (size / 64), WINDOW)).collect();
    w.push((size - WINDOW, WINDOW));
    if size > (1 << 32) + WINDOW {
        w.push(((1 << 32) - WINDOW / 2, WINDOW));
    }
    w
}

/// Hashes the bytes `read_at` returns over the windows of a file of `size` bytes.
pub fn digest(size: u64, mut read_at: impl FnMut(u64, &mut [u8]) -> usize) -> u64 {
    let mut h = DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    for (start, len) in windows(size) {
        let mut done = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = read_at(start + done, &mut buf[..want]);
            assert!(
                n > 0,
                "short read at {} of a {size}-byte file",
                start + done
            );
            h.write(&buf[..n]);
            done += n as u64;
        }
    }
    h.finish()
}

/// A snapshot in path order (a directory on disk lists in its own order, an image sorted),
/// each node's xattrs in name order (listxattr gives the file system's order: the source
/// tree's, or the order an image stores them in, which is by name for ours).
pub fn sorted(mut nodes: Vec<Node>) -> Vec<Node> {
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    for n in &mut nodes {
        n.xattrs.sort();
    }
    nodes
}

/// Snapshot of the tree under `root` (a mount point or an extracted directory).
pub fn from_dir(root: &Path) -> Vec<Node> {
    let mut nodes = Vec::new();
    walk_dir(root, b"", &mut nodes);
    nodes
}

fn walk_dir(path: &Path, rel: &[u8], nodes: &mut Vec<Node>) {
    let md =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let mode = md.mode();
    let digest = (mode & S_IFMT == S_IFREG).then(|| {
        let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        digest(md.size(), |at, buf| f.read_at(buf, at).expect("read"))
    });
    nodes.push(Node {
        path: rel.to_vec(),
        ino: md.ino(),
        mode,
        nlink: md.nlink(),
        uid: md.uid(),
        gid: md.gid(),
        size: md.size(),
        mtime: md.mtime(),
        rdev: md.rdev(),
        target: md.file_type().is_symlink().then(|| {
            std::fs::read_link(path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        }),
        xattrs: crate::sys::xattrs(path),
        digest,
    });
    if mode & S_IFMT == S_IFDIR {
        for entry in std::fs::read_dir(path).unwrap() {
            let entry = entry.unwrap();
            let mut child = rel.to_vec();
            child.push(b'/');
            child.extend_from_slice(entry.file_name().as_bytes());
            walk_dir(&entry.path(), &child, nodes);
        }
    }
}

/// Snapshot of the whole image, as the library reports it.
pub fn from_archive(archive: &Archive) -> Result<Vec<Node>, sqfs::Error> {
    let mut nodes = Vec::new();
    walk_archive(archive, archive.root()?, b"", &mut nodes)?;
    Ok(nodes)
}

fn walk_archive(
    archive: &Archive,
    inode: Inode,
    rel: &[u8],
    nodes: &mut Vec<Node>,
) -> Result<(), sqfs::Error> {
    let attr = archive.attr(&inode)?;
    let digest = if inode.kind() == FileType::File {
        let data = archive.file_data(&inode)?;
        Some(digest(attr.size, |at, buf| {
            archive.read_data(&data, at, buf).expect("library read")
        }))
    } else {
        None
    };
    nodes.push(Node {
        path: rel.to_vec(),
        ino: u64::from(attr.ino),
        mode: attr.mode,
        nlink: u64::from(attr.nlink),
        uid: attr.uid,
        gid: attr.gid,
        size: attr.size,
        mtime: i64::from(attr.mtime),
        rdev: attr.rdev,
        target: archive.read_link(&inode).ok().map(|t| t.to_vec()),
        xattrs: archive
            .xattrs(&inode)?
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect(),
        digest,
    });
    if inode.is_dir() {
        for entry in archive.read_dir(&inode)? {
            let entry = entry?;
            let mut child = rel.to_vec();
            child.push(b'/');
            child.extend_from_slice(&entry.name);
            walk_archive(archive, archive.entry_inode(&entry)?, &child, nodes)?;
        }
    }
    Ok(())
}

/// Which fields a comparison skips.
#[derive(Default, Clone, Copy)]
pub struct Ignore {
    /// Inode numbers (an extracted tree has the destination filesystem's).
    pub ino: bool,
    /// Directory sizes and link counts (the destination filesystem's own).
    pub dir_size: bool,
    /// Link counts of every node (with `ino`: two builds of one tree may group hard links
    /// differently).
    pub nlink: bool,
}

/// Compares two snapshots node by node; the error lists the first differences.
pub fn compare(expected: &[Node], actual: &[Node], ignore: Ignore) -> Result<(), String> {
    let mut diffs = Vec::new();
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        let mut e = e.clone();
        let mut a = a.clone();
        if ignore.ino {
            (e.ino, a.ino) = (0, 0);
        }
        if ignore.nlink {
            (e.nlink, a.nlink) = (0, 0);
        }
        if ignore.dir_size && e.mode & S_IFMT == S_IFDIR {
            (e.size, a.size, e.nlink, a.nlink) = (0, 0, 0, 0);
        }
        if e != a {
            diffs.push(format!(
                "node {i}:\n  expected {}\n  actual   {}",
                show(&e),
                show(&a)
            ));
            if diffs.len() >= 5 {
                break;
            }
        }
    }
    if expected.len() != actual.len() {
        diffs.push(format!(
            "{} nodes expected, {} found",
            expected.len(),
            actual.len()
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

fn show(n: &Node) -> String {
    format!(
        "{:?} ino={} mode={:o} nlink={} {}:{} size={} mtime={} rdev={:#x} target={:?} xattrs={} digest={:?}",
        String::from_utf8_lossy(&n.path),
        n.ino,
        n.mode,
        n.nlink,
        n.uid,
        n.gid,
        n.size,
        n.mtime,
        n.rdev,
        n.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
        n.xattrs.len(),
        n.digest
    )
}
