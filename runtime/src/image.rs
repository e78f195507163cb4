//! Which image a reference names: a SquashFS file or a SIF (known by their magic, also
//! through a symlink), a directory, or an image name in the storage directory ([`storage`]), with
//! Charliecloud's messages. The image is opened once, here, and used through that
//! descriptor: what was checked is what runs.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, stat, FileStat, Mode, SFlag};
use sqfs::{Archive, OpenOptions};

use crate::failure::{io_text, with_errno, Failure};
use crate::storage::{self, Storage};
use crate::trust::{self, Me};
use crate::{binds, bounded};

/// SquashFS's magic, "hsqs" little-endian.
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

pub enum Image {
    /// Opened and checked before any namespace work, so a bad image is a one-line error.
    /// A SIF is one too: its primary partition is the SquashFS.
    Squash {
        path: PathBuf,
        archive: Arc<Archive>,
        /// The file the archive reads (a duplicate), for a shared server to serve.
        file: Arc<OwnedFd>,
        /// What tells this image apart from any other, or from itself changed (see
        /// [`fingerprint`]).
        fingerprint: String,
    },
    Directory {
        path: PathBuf,
        /// The directory checked on the host (`O_PATH`); the container gets this one.
        fd: OwnedFd,
    },
}

/// An image and, if someone else could change it, a warning to print.
pub struct Resolved {
    pub image: Image,
    pub warning: Option<String>,
}

impl Image {
    pub fn path(&self) -> &Path {
        match self {
            Image::Squash { path, .. } | Image::Directory { path, .. } => path,
        }
    }

    /// The bytes of the image's file `path` (as the container sees it: symlinks stay inside
    /// the image), at most [`bounded::LIMIT`] of them.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let cant = |what: &str, e: String| Failure::Runtime(format!("can't {what}: {path}: {e}"));
        let read = |e: bounded::Error| cant("read", e.text());
        match self {
            Image::Directory { fd, .. } => {
                // Non-blocking: a FIFO in the image reads as empty instead of waiting forever.
                let file = binds::openat2(
                    fd,
                    Path::new(path),
                    libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
                    libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
                )
                .map_err(|e| cant("open", e.desc().into()))?;
                bounded::read_to_end(File::from(file), bounded::LIMIT).map_err(read)
            }
            Image::Squash { archive, .. } => {
                let inode = archive
                    .lookup_path(path)
                    .map_err(|e| cant("open", e.to_string()))?;
                bounded::read_squash_file(archive, &inode, bounded::LIMIT).map_err(read)
            }
        }
    }
}

/// The default storage directory, `/var/tmp/$USER.ch`, as ch-image uses.
pub fn default_storage(user: &str) -> PathBuf {
    PathBuf::from(format!("/var/tmp/{user}.ch"))
}

/// Resolves `reference`: an image of that name in `storage` first (as Charliecloud looks),
/// else a path.
pub fn resolve(reference: &str, storage: &Storage, me: &Me) -> Result<Resolved, Failure> {
    if let Some(found) = storage::find(storage, reference, me)? {
        let image = classify(found.image, &found.path, reference)?;
        let warning = image_warning(&image, me)
            .or_else(|| {
                trust::others_can_replace(&found.dir, &found.entry, me).map(|why| {
                    let dir = found.path.parent().unwrap_or(Path::new("/"));
                    format!("its directory {} is {why}", dir.display())
                })
            })
            .or_else(|| directory_warning(&image, me));
        return Ok(Resolved {
            image: image.image,
            warning: warning.map(warning_text),
        });
    }
    let fd = nix::fcntl::open(reference, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        // SAFETY: open returned a new descriptor we own.
        .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
        .map_err(|e| Failure::Runtime(with_errno(format!("can't stat: {reference}"), e)))?;
    let image = classify(fd, Path::new(reference), reference)?;
    let warning = image_warning(&image, me).or_else(|| directory_warning(&image, me));
    Ok(Resolved {
        image: image.image,
        warning: warning.map(warning_text),
    })
}

fn warning_text(what: String) -> String {
    format!("image can be changed by someone else: {what}")
}

/// An image, what `fstat` said of it, and where it really is (symlinks followed).
struct Checked {
    image: Image,
    stat: FileStat,
    real: Option<PathBuf>,
}

/// The image itself, if someone else can write to it.
fn image_warning(image: &Checked, me: &Me) -> Option<String> {
    trust::others_can_write(&image.stat, me)
        .map(|why| format!("{} is {why}", image.image.path().display()))
}

/// The directory that really holds the image, if someone else could replace the image in it.
fn directory_warning(image: &Checked, me: &Me) -> Option<String> {
    let dir = image.real.as_deref()?.parent()?;
    let dir_stat = stat(dir).ok()?;
    trust::others_can_replace(&dir_stat, &image.stat, me)
        .map(|why| format!("its directory {} is {why}", dir.display()))
}

/// What the opened `fd` is: a directory, or a file with SquashFS's or SIF's magic. `path` is shown in
/// messages about the image, `reference` (what the user typed) in Charliecloud's.
fn classify(fd: OwnedFd, path: &Path, reference: &str) -> Result<Checked, Failure> {
    let st = fstat(fd.as_raw_fd())
        .map_err(|e| Failure::Runtime(with_errno(format!("can't stat: {reference}"), e)))?;
    let unknown = || Failure::Runtime(format!("unknown image type: {reference}"));
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok();
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFDIR {
        return Ok(Checked {
            image: Image::Directory {
                path: path.to_path_buf(),
                fd,
            },
            stat: st,
            real,
        });
    }
    // Anything else but a file or a block device is never opened: a FIFO would block.
    if kind != SFlag::S_IFREG && kind != SFlag::S_IFBLK {
        return Err(unknown());
    }
    let file = reopen_for_reading(&fd)
        .map_err(|e| Failure::Runtime(with_errno(format!("can't open: {reference}"), e)))?;
    // SquashFS's magic at 0, or SIF's at 32 (the library opens a SIF's primary partition).
    let mut prefix = [0u8; sqfs::sif::MAGIC_AT + sqfs::sif::MAGIC.len()];
    let n = read_prefix(&file, &mut prefix)
        .map_err(|e| Failure::Runtime(format!("can't read: {reference}: {}", io_text(&e))))?;
    let prefix = &prefix[..n];
    if !(prefix.starts_with(SQUASHFS_MAGIC) || sqfs::sif::is_sif(prefix)) {
        return Err(unknown());
    }
    let cant =
        |e: sqfs::Error| Failure::Runtime(format!("can't open SquashFS: {}: {e}", path.display()));
    let duplicate = file
        .try_clone()
        .map_err(|e| Failure::Runtime(format!("can't open: {reference}: {}", io_text(&e))))?;
    let archive = Archive::open_file(file, &OpenOptions::default()).map_err(cant)?;
    archive.root().map_err(cant)?;
    let fingerprint = fingerprint(&st, &archive);
    Ok(Checked {
        image: Image::Squash {
            path: path.to_path_buf(),
            archive: Arc::new(archive),
            file: Arc::new(OwnedFd::from(duplicate)),
            fingerprint,
        },
        stat: st,
        real,
    })
}

/// What identifies the image's content: the file (device, inode), its size and its
/// modification and change times (any write moves them), and the superblock (and SIF header)
/// read from it, which a rewrite by mksquashfs changes too (its creation time, sizes, table
/// offsets) even within one tick of the file system's clock. Includes ch-run's version, so
/// that a server of another build is never used.
fn fingerprint(st: &FileStat, archive: &Archive) -> String {
    let content = format!("{:?} {:?}", archive.superblock(), archive.sif());
    format!(
        "ch-run {} dev {} ino {} size {} mtime {}.{} ctime {}.{} content {:032x}",
        crate::VERSION,
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
        crate::join::rendezvous::fnv1a_128(content.as_bytes())
    )
}

/// The first bytes of `file`, as many as there are up to `buf`'s length.
fn read_prefix(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The file an `O_PATH` descriptor refers to, opened for reading: the very same inode, with
/// the permission check a plain open makes.
fn reopen_for_reading(fd: &OwnedFd) -> Result<File, Errno> {
    nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    // SAFETY: open returned a new descriptor we own.
    .map(|raw| unsafe { File::from_raw_fd(raw) })
}
