//! The kernel's readahead window for our mount. FUSE starts every mount at the default
//! 128 KiB (and clamps it to that again when it answers INIT), so a sequential reader has
//! one 128 KiB READ in flight at a time, and each READ costs a round trip through the
//! daemon. A window of a few MiB lets the kernel send READs of up to 1 MiB
//! (`max_pages`) several at a time, which the worker threads serve in parallel from blocks
//! the prefetch threads decompressed ahead. Only root can change it (sysfs); squashfuse
//! leaves it alone, and so does a mount inside a user namespace (ch-run).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The window set when `-o read_ahead_kb=N` is not given: the reach of our own prefetch.
pub const DEFAULT_KB: u32 = 4096;

/// Sets the mount's readahead window to `kb` KiB from a thread of its own. The window can
/// only be set once the kernel has taken our INIT answer (which clamps it): `stat` of the
/// mount point is a request the kernel holds until then, so its return is the signal.
/// Errors (not root, no sysfs) leave the kernel's default in place, silently.
pub fn set_when_ready(mountpoint: &Path, kb: u32) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let mountpoint = mountpoint.to_path_buf();
    let _ = std::thread::Builder::new()
        .name("readahead".into())
        .spawn(move || {
            if let Some(path) = sysfs_file(&mountpoint) {
                if let Err(e) = std::fs::write(&path, kb.to_string()) {
                    log::debug!("{}: {e}", path.display());
                }
            }
        });
}

/// `/sys/class/bdi/MAJ:MIN/read_ahead_kb` of the filesystem mounted at `mountpoint`:
/// FUSE names its backing device after the superblock's device number.
fn sysfs_file(mountpoint: &Path) -> Option<PathBuf> {
    let dev = std::fs::metadata(mountpoint).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    Some(PathBuf::from(format!(
        "/sys/class/bdi/{major}:{minor}/read_ahead_kb"
    )))
}
