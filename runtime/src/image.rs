//! Which image a reference names: a SquashFS file (known by its magic, also through a
//! symlink), a directory, or an image name in the storage directory.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use sqfs::{Archive, OpenOptions};

use crate::failure::Failure;
use crate::{binds, bounded};

/// SquashFS's magic, "hsqs" little-endian.
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

pub enum Image {
    /// Opened and checked before any namespace work, so a bad image is a one-line error.
    Squash {
        path: PathBuf,
        archive: Arc<Archive>,
    },
    Directory(PathBuf),
}

impl Image {
    pub fn path(&self) -> &Path {
        match self {
            Image::Squash { path, .. } | Image::Directory(path) => path,
        }
    }

    /// The bytes of the image's file `path` (as the container sees it: symlinks stay inside
    /// the image), at most [`bounded::LIMIT`] of them.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let cant = |what: &str, e: String| Failure::Runtime(format!("can't {what}: {path}: {e}"));
        let read = |e: bounded::Error| cant("read", e.text());
        match self {
            Image::Directory(dir) => {
                let root = open_path_dir(dir).map_err(|e| cant("open", e.desc().into()))?;
                // Non-blocking: a FIFO in the image reads as empty instead of waiting forever.
                let fd = binds::openat2(
                    &root,
                    Path::new(path),
                    libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
                    libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
                )
                .map_err(|e| cant("open", e.desc().into()))?;
                bounded::read_to_end(File::from(fd), bounded::LIMIT).map_err(read)
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

fn open_path_dir(dir: &Path) -> Result<OwnedFd, nix::errno::Errno> {
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    // SAFETY: open returned a new descriptor we own.
    .map(|raw| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// The storage directory's image path for a name: `STORAGE/img/NAME` with `/` as `%` and
/// `:` as `+`, as ch-image stores them.
pub fn storage_path(storage: &Path, name: &str) -> PathBuf {
    storage
        .join("img")
        .join(name.replace('/', "%").replace(':', "+"))
}

/// The default storage directory, `/var/tmp/$USER.ch`, as ch-image uses.
pub fn default_storage(user: &str) -> PathBuf {
    PathBuf::from(format!("/var/tmp/{user}.ch"))
}

/// Resolves `reference`: an image of that name in `storage` first (as Charliecloud looks),
/// else a path.
pub fn resolve(reference: &str, storage: &Path) -> Result<Image, Failure> {
    let stored = storage_path(storage, reference);
    let path = if !reference.is_empty() && stored.symlink_metadata().is_ok() {
        stored
    } else {
        PathBuf::from(reference)
    };
    let md = std::fs::metadata(&path).map_err(|e| {
        Failure::Runtime(format!(
            "can't stat: {}: {}",
            path.display(),
            crate::plan::io_text(&e)
        ))
    })?;
    if md.is_dir() {
        return Ok(Image::Directory(path));
    }
    if md.is_file() && has_squashfs_magic(&path) {
        return open_squash(path);
    }
    Err(Failure::Runtime(format!("unknown image type: {reference}")))
}

fn has_squashfs_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == SQUASHFS_MAGIC
}

fn open_squash(path: PathBuf) -> Result<Image, Failure> {
    let file = File::open(&path)
        .map_err(|e| Failure::Runtime(format!("can't open SquashFS: {}: {e}", path.display())))?;
    let archive = Archive::open_file(file, &OpenOptions::default())
        .and_then(|a| a.root().map(|_| a))
        .map_err(|e| Failure::Runtime(format!("can't open SquashFS: {}: {e}", path.display())))?;
    Ok(Image::Squash {
        path,
        archive: Arc::new(archive),
    })
}
