//! The image file: written under a temporary name beside the target and renamed over it
//! only when complete, so the target's name never holds half an image. The temporary file
//! is removed when packing fails, and when SIGINT, SIGTERM or SIGHUP ends the process
//! (the handler only unlinks a path prepared beforehand and re-raises the signal, both
//! async-signal-safe).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use super::error::{Error, Result};

/// The temporary file's path, for the signal handler (null: nothing to remove).
static TEMPORARY: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn remove_and_reraise(signal: libc::c_int) {
    let path = TEMPORARY.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: unlink, signal and raise are async-signal-safe; `path` is a leaked CString
    // that is never freed.
    unsafe {
        if !path.is_null() {
            libc::unlink(path);
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// An image being written.
pub struct Output {
    temporary: PathBuf,
    target: PathBuf,
    pub file: File,
    done: bool,
}

fn image_error(path: &Path, source: io::Error) -> Error {
    Error::Image {
        path: path.display().to_string(),
        source,
    }
}

impl Output {
    /// A new temporary file beside `target` (which must not be a directory).
    pub fn create(target: &Path) -> Result<Output> {
        if target.is_dir() {
            return Err(image_error(
                target,
                io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        let name = target
            .file_name()
            .ok_or_else(|| Error::Options(format!("{}: not a file name", target.display())))?;
        let mut temporary_name = b".".to_vec();
        temporary_name.extend_from_slice(name.as_bytes());
        temporary_name.extend_from_slice(format!(".pack-{}", std::process::id()).as_bytes());
        let temporary = target.with_file_name(std::ffi::OsStr::from_bytes(&temporary_name));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_CLOEXEC)
            .open(&temporary)
            .map_err(|e| image_error(&temporary, e))?;
        let path = CString::new(temporary.as_os_str().as_bytes())
            .map_err(|_| Error::Options("a NUL in the image's path".into()))?;
        TEMPORARY.store(path.into_raw(), Ordering::SeqCst);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the handler only makes async-signal-safe calls.
            unsafe {
                libc::signal(
                    signal,
                    remove_and_reraise as *const () as libc::sighandler_t,
                )
            };
        }
        Ok(Output {
            temporary,
            target: target.to_path_buf(),
            file,
            done: false,
        })
    }

    /// The files the walk must leave out: the temporary image, and the target if it
    /// exists (either may lie inside the tree being packed), by device and inode.
    pub fn own_files(&self) -> Vec<(u64, u64)> {
        [&self.temporary, &self.target]
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect()
    }

    /// Puts the complete image under the target's name.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temporary, &self.target).map_err(|e| image_error(&self.target, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let path = TEMPORARY.swap(std::ptr::null_mut(), Ordering::SeqCst);
        if !self.done {
            let _ = std::fs::remove_file(&self.temporary);
        }
        if !path.is_null() {
            // SAFETY: made by CString::into_raw in create(), and taken out of the static
            // first, so the handler can no longer use it.
            drop(unsafe { CString::from_raw(path) });
        }
    }
}
