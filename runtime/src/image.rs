//! Which image a reference names: a SquashFS file (known by its magic, also through a
//! symlink), a directory, or an image name in the storage directory.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqfs::{Archive, OpenOptions};

use crate::failure::Failure;

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
