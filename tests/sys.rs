//! Root checks, loop mounts and xattr reads for the tests.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A read-only loop mount of an image by the kernel's squashfs driver; unmounted on drop.
pub struct LoopMount {
    pub dir: PathBuf,
}

impl LoopMount {
    pub fn new(image: &Path, offset: u64) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "sqfs-kmnt-{}-{}",
            std::process::id(),
            image.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "squashfs", "-o", &format!("loop,ro,offset={offset}")])
            .arg(image)
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mount {}: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(LoopMount { dir })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-d").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in paths")
}

/// Every xattr of `path` (not following symlinks), in the order the kernel lists them.
pub fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let p = cpath(path);
    let mut names = vec![0u8; 65536];
    // SAFETY: p is NUL-terminated; names has names.len() writable bytes.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cname = CString::new(name).unwrap();
            let mut value = vec![0u8; 65536];
            // SAFETY: both strings are NUL-terminated; value has value.len() writable bytes.
            let len = unsafe {
                libc::lgetxattr(
                    p.as_ptr(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            assert!(
                len >= 0,
                "lgetxattr {} {:?}",
                path.display(),
                String::from_utf8_lossy(name)
            );
            value.truncate(len as usize);
            (name.to_vec(), value)
        })
        .collect()
}
