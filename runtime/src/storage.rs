//! Finding an image by name in the storage directory (`STORAGE/img/NAME`, as ch-image keeps
//! them), without trusting what someone else may have put there.
//!
//! The default storage directory, `/var/tmp/$USER.ch`, lies in a directory anyone may write
//! to: whoever makes it first decides what it holds. So it, and its `img`, are used only if
//! they are real directories owned by the user that nobody else can write to; otherwise ch-run
//! refuses. A storage directory given with `-s` or `$CH_IMAGE_STORAGE` is the user's choice
//! and is used as it is (the image found is checked like any other, see `image.rs`).
//!
//! Each directory is opened once, checked through its descriptor (`fstat`), and the next name
//! is looked up relative to that descriptor: nothing is re-walked by path between the check
//! and the use.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

use crate::failure::{with_errno, Failure};
use crate::trust::{self, Me, Unusable};

/// A storage directory and whether it is the default one.
pub struct Storage {
    pub path: PathBuf,
    /// Not chosen by the user: checked before use.
    pub default: bool,
}

/// An image entry found in storage.
pub struct Found {
    /// `STORAGE/img/NAME`, for messages.
    pub path: PathBuf,
    /// The image itself (symlinks followed), `O_PATH`.
    pub image: OwnedFd,
    /// The `img` directory and the entry in it (not followed): who could replace the entry.
    pub dir: FileStat,
    pub entry: FileStat,
}

/// The file name under which ch-image stores `name`: `/` as `%`, `:` as `+`.
pub fn file_name(name: &str) -> String {
    name.replace('/', "%").replace(':', "+")
}

/// Whether `reference` could name a stored image at all. `.` and `..` are paths: as names
/// they would be `img/.` and `img/..`, the storage directories themselves.
fn could_be_a_name(reference: &str) -> bool {
    !reference.is_empty() && reference != "." && reference != ".."
}

fn open_at(dir: Option<&OwnedFd>, name: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(
        dir.map(|d| d.as_raw_fd()),
        name,
        flags | OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    // SAFETY: openat returned a new descriptor we own.
    .map(|raw| unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Opens a storage directory (`name` under `parent`, or a path) the way its kind requires.
/// None: it does not exist (so no image is stored there).
fn open_dir(
    storage: &Storage,
    parent: Option<&OwnedFd>,
    name: &Path,
    shown: &Path,
    me: &Me,
) -> Result<Option<OwnedFd>, Failure> {
    let cant_stat = |e| Failure::Runtime(with_errno(format!("can't stat: {}", shown.display()), e));
    if storage.default {
        return trust::open_private_dir(parent, name, me).map_err(|e| match e {
            Unusable::NotPrivate(why) => not_private(shown, &why),
            Unusable::Failed(e) => cant_stat(e),
        });
    }
    match open_at(parent, name, OFlag::O_DIRECTORY) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(cant_stat(e)),
    }
}

fn not_private(dir: &Path, why: &str) -> Failure {
    Failure::Runtime(format!(
        "storage directory not private: {}: {why}; it must be a directory owned by you and writable only by you (or choose another with -s DIR)",
        dir.display()
    ))
}

/// The image stored under `reference`, if there is one.
pub fn find(storage: &Storage, reference: &str, me: &Me) -> Result<Option<Found>, Failure> {
    if !could_be_a_name(reference) {
        return Ok(None);
    }
    let Some(top) = open_dir(storage, None, &storage.path, &storage.path, me)? else {
        return Ok(None);
    };
    let img_path = storage.path.join("img");
    let Some(img) = open_dir(storage, Some(&top), Path::new("img"), &img_path, me)? else {
        return Ok(None);
    };
    let name = file_name(reference);
    let path = img_path.join(&name);
    let cant_stat = |e| Failure::Runtime(with_errno(format!("can't stat: {}", path.display()), e));
    // As Charliecloud: the entry existing (even as a dangling symlink) makes it a name.
    let entry = match fstatat(
        Some(img.as_raw_fd()),
        Path::new(&name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(cant_stat(e)),
    };
    let image = open_at(Some(&img), Path::new(&name), OFlag::empty()).map_err(cant_stat)?;
    let dir = fstat(img.as_raw_fd()).map_err(cant_stat)?;
    Ok(Some(Found {
        path,
        image,
        dir,
        entry,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_ch_image_stores_them() {
        assert_eq!(
            file_name("example.com:5050/a/b:1.0"),
            "example.com+5050%a%b+1.0"
        );
        assert!(could_be_a_name("busybox"));
        for path in ["", ".", ".."] {
            assert!(!could_be_a_name(path), "{path:?}");
        }
    }
}
