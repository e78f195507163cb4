//! The kernel's readahead window for our mount. FUSE starts every mount at the default
//! 128 KiB (and clamps it to that again when it answers INIT), so a sequential reader has
//! one 128 KiB READ in flight at a time, and each READ costs a round trip through the
//! daemon. A wider window lets the kernel send READs of up to 1 MiB (`max_pages`) several
//! at a time, which the worker threads serve in parallel from blocks the prefetch threads
//! decompressed ahead. Only root can change it (sysfs); squashfuse leaves it alone, and so
//! does a mount inside a user namespace (ch-run).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::statfs::{statfs, FUSE_SUPER_MAGIC};

/// The window set when `-o read_ahead_kb=N` is not given: as large as one READ can be
/// (1 MiB, FUSE's `max_pages`). Larger windows read sequential files a little faster but
/// make every page fault of a randomly read mmapped file read that much around it.
pub const DEFAULT_KB: u32 = 1024;

/// Sets the readahead window of the FUSE mount at `mountpoint` (an absolute path) to `kb`
/// KiB, if we are root. Must run while the session serves requests: the window can only
/// be set once the kernel has taken our INIT answer (which clamps it), and `stat` of the
/// mount point is a request the kernel holds until then, so its return is the signal.
/// Anything in the way (not root, no sysfs, the mount already gone) leaves the kernel's
/// default; the reason is logged at debug level.
pub fn set(mountpoint: &Path, kb: u32) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Err(e) = try_set(mountpoint, kb) {
        log::debug!("read_ahead_kb={kb} not set: {e}");
    }
}

fn try_set(mountpoint: &Path, kb: u32) -> Result<(), String> {
    let dev = std::fs::metadata(mountpoint)
        .map_err(|e| e.to_string())?
        .dev();
    // Only ever our own FUSE mount's backing device (FUSE names it after the superblock's
    // anonymous device, major 0): if the mount went away under us, the directory beneath
    // belongs to another filesystem whose disk must keep its setting.
    let fs = statfs(mountpoint).map_err(|e| e.to_string())?;
    if fs.filesystem_type() != FUSE_SUPER_MAGIC || libc::major(dev) != 0 {
        return Err(format!("{} is not a FUSE mount", mountpoint.display()));
    }
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    std::fs::write(&path, kb.to_string()).map_err(|e| format!("{path}: {e}"))
}
