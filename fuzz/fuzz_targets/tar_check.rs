//! The body of the `tar` fuzz target: arbitrary bytes packed by `sqfs pack --tar`
//! (`sqfs_tool::pack::pack_tar`) into an image in a private scratch directory, and the
//! checks on what came of it.
//!
//! Compiled into the target (`tar.rs`) and, by path, into `tests/pack_tar.rs`, which
//! replays the seeds and committed findings through it; so it uses only `std`, `sqfs`,
//! `sqfs_tool` and the three codecs a tar stream may come in.
//!
//! The input: a first byte of flags, then the tar stream. Flags: bits 0-1 wrap the stream
//! (none, gzip, zstd, xz: compressed here, quickly, so that the decoders' side of
//! `input.rs` is fuzzed with valid streams; a raw input that starts with a magic reaches
//! the decoders as it is), bit 2 excludes `x` and `d/x` (`-e`: hard links to excluded
//! members), bit 3 leaves xattrs out, bit 4 forces the owners to root.
//!
//! A finding (a panic here): a success whose image does not open and walk completely with
//! `sqfs::Archive` (every directory listed in name order, every file read to its size,
//! every symlink and xattr read) or holds what Linux cannot show (a name with a NUL or
//! `/`, `.` or `..`, a symlink target empty, past 4095 bytes or with a NUL, an xattr name
//! with a NUL or past 255 bytes), a failure whose message is not one line, or any file but
//! the image in the scratch directory afterwards (nothing at all after a failure).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sqfs::{Archive, FileType, OpenOptions};

/// The scratch tree one process packs in: `input.tar` (the stream) and `out/`, where
/// only the image may be.
pub struct Scratch {
    top: PathBuf,
    input: PathBuf,
    out: PathBuf,
    image: PathBuf,
}

/// How the stream is wrapped (bits 0-1 of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    None,
    Gzip,
    Zstd,
    Xz,
}

impl Wrap {
    /// The flags byte that wraps a stream so (and sets no other flag).
    pub fn flags(self) -> u8 {
        self as u8
    }

    fn of(flags: u8) -> Wrap {
        [Wrap::None, Wrap::Gzip, Wrap::Zstd, Wrap::Xz][usize::from(flags & 3)]
    }

    fn apply(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Wrap::None => tar.to_vec(),
            Wrap::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip");
                e.finish().expect("gzip")
            }
            Wrap::Zstd => zstd::bulk::compress(tar, 1).expect("zstd"),
            Wrap::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
                e.write_all(tar).expect("xz");
                e.finish().expect("xz")
            }
        }
    }
}

/// Flag bits past the wrapping.
pub const EXCLUDE_X: u8 = 4;
pub const NO_XATTRS: u8 = 8;
pub const ALL_ROOT: u8 = 16;

/// What a successful pack holds, as the walk found it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walked {
    /// Every path (`/` first), with its type and size; in walk order.
    pub entries: Vec<(Vec<u8>, FileType, u64)>,
}

impl Walked {
    /// The entry at `path`, if the image has one.
    pub fn get(&self, path: &str) -> Option<(FileType, u64)> {
        self.entries
            .iter()
            .find(|(p, _, _)| p == path.as_bytes())
            .map(|&(_, t, s)| (t, s))
    }
}

/// The bytes read of files, at most, per input: the walk reads every file, and a sparse
/// one may be all holes.
const READ_LIMIT: u64 = 1 << 32;

impl Scratch {
    /// Makes the scratch directory under the temporary directory, named after the process.
    pub fn new(tag: &str) -> Scratch {
        let top = std::env::temp_dir().join(format!("sqfs-fuzz-tar-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let out = top.join("out");
        std::fs::create_dir_all(&out).expect("scratch");
        Scratch {
            input: top.join("input.tar"),
            image: out.join("image.sqfs"),
            out,
            top,
        }
    }

    /// Packs `data` (flags, then the stream); panics on a finding. The walk of the image,
    /// or the one-line error.
    pub fn pack(&self, data: &[u8]) -> Result<Walked, String> {
        let (flags, tar) = data.split_first().map_or((0, &[][..]), |(f, t)| (*f, t));
        std::fs::write(&self.input, Wrap::of(flags).apply(tar)).expect("scratch input");
        let _ = std::fs::remove_file(&self.image);
        let mut args: Vec<String> = ["sqfs", "pack", "--tar"].map(String::from).to_vec();
        args.push(self.input.display().to_string());
        args.push(self.image.display().to_string());
        for a in [
            "--quiet",
            "-p",
            "1",
            "-b",
            "4K",
            "--comp",
            "lz4",
            "--mkfs-time",
            "0",
        ] {
            args.push(a.into());
        }
        if flags & EXCLUDE_X != 0 {
            args.extend(["-e", "x", "d/x"].map(String::from));
        }
        if flags & NO_XATTRS != 0 {
            args.push("--no-xattrs".into());
        }
        if flags & ALL_ROOT != 0 {
            args.push("--all-root".into());
        }
        let cli = sqfs_tool::cli::parse(args.iter().map(std::ffi::OsString::from));
        let sqfs_tool::cli::Command::Pack(pack_args) = cli.command else {
            unreachable!("a pack command")
        };
        let options = sqfs_tool::pack::Options::from_args(&pack_args, None).expect("options");
        let result = sqfs_tool::pack::pack_tar(&self.input, &self.image, &options);
        let mut left: Vec<String> = std::fs::read_dir(&self.out)
            .expect("scratch listing")
            .map(|e| {
                e.expect("scratch listing")
                    .file_name()
                    .to_string_lossy()
                    .into()
            })
            .collect();
        left.sort();
        match result {
            Ok(_) => {
                assert_eq!(left, ["image.sqfs"], "files beside the image");
                Ok(walk(&self.image))
            }
            Err(e) => {
                let message = e.to_string();
                assert!(
                    !message.contains(['\n', '\r']) && !message.is_empty(),
                    "not one line: {message:?}"
                );
                assert!(
                    left.is_empty(),
                    "left after a failure ({message}): {left:?}"
                );
                Err(message)
            }
        }
    }

    /// Removes the whole scratch directory.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Opens the image and walks all of it, without recursion (a tar's paths may be deep).
fn walk(image: &Path) -> Walked {
    let file = File::open(image).expect("the image");
    let archive = Archive::open_file(file, &OpenOptions::default()).expect("the image opens");
    let mut walked = Walked::default();
    let mut read = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut stack = vec![(b"/".to_vec(), archive.root().expect("the root"))];
    while let Some((path, inode)) = stack.pop() {
        let attr = archive.attr(&inode).expect("attr");
        for x in archive.xattrs(&inode).expect("xattrs") {
            // What no file can carry: the kernel would list it as other names.
            assert!(
                !x.name.contains(&0) && x.name.len() <= 255,
                "an xattr name {:?}",
                x.name
            );
        }
        let kind = inode.kind();
        walked.entries.push((path.clone(), kind, attr.size));
        match kind {
            FileType::Directory => {
                let mut last: Option<Vec<u8>> = None;
                for e in archive.read_dir(&inode).expect("listing") {
                    let e = e.expect("an entry");
                    assert!(last.as_ref().is_none_or(|l| *l < e.name), "names in order");
                    // A name the kernel can show: no NUL or `/`, not `.` or `..`, not empty.
                    let name = &e.name[..];
                    assert!(
                        !name.is_empty()
                            && name.len() <= 256
                            && !name.contains(&0)
                            && !name.contains(&b'/')
                            && name != b"."
                            && name != b"..",
                        "a name {name:?}"
                    );
                    let child = archive.entry_inode(&e).expect("an entry's inode");
                    let mut child_path = path.clone();
                    if child_path != b"/" {
                        child_path.push(b'/');
                    }
                    child_path.extend_from_slice(&e.name);
                    last = Some(e.name.to_vec());
                    stack.push((child_path, child));
                }
            }
            FileType::File => {
                let mut at = 0u64;
                while at < attr.size && read < READ_LIMIT {
                    let n = archive.read_at(&inode, at, &mut buf).expect("file content");
                    assert!(n > 0, "a file that ends before its size");
                    at += n as u64;
                    read += n as u64;
                }
            }
            FileType::Symlink => {
                let target = archive.read_link(&inode).expect("a symlink's target");
                assert_eq!(target.len() as u64, attr.size, "a symlink's size");
                assert!(
                    !target.is_empty() && target.len() <= 4095 && !target.contains(&0),
                    "a symlink target readlink cannot show: {target:?}"
                );
            }
            _ => {}
        }
    }
    walked
}
