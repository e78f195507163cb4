//! The kernel's readahead window for our mount. FUSE starts every mount at the default
//! 128 KiB (and clamps it to that again when it answers INIT), so a sequential reader has
//! one 128 KiB READ in flight at a time, and each READ costs a round trip through the
//! daemon. A wider window lets the kernel send READs of up to 1 MiB (`max_pages`) several
//! at a time, which the worker threads serve in parallel from blocks the prefetch threads
//! decompressed ahead. Only root can change it (sysfs); squashfuse leaves it alone, and so
//! does a mount inside a user namespace (ch-run).

use crate::mountinfo::DeviceId;

/// The window set when `-o read_ahead_kb=N` is not given: as large as one READ can be
/// (1 MiB, FUSE's `max_pages`). Larger windows read sequential files a little faster but
/// make every page fault of a randomly read mmapped file read that much around it.
pub const DEFAULT_KB: u32 = 1024;

/// Sets the readahead window of our FUSE mount to `kb` KiB, if we are root. `device` is
/// the mount's, as mountinfo showed it right after the mount was made. The window can only
/// be set once the kernel has taken our INIT answer (which clamps it): the session answers
/// INIT as it starts, so any time after that. Anything in the way (not root, no sysfs)
/// leaves the kernel's default; the reason is logged at debug level.
pub fn set(device: DeviceId, kb: u32) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Err(e) = try_set(device, kb) {
        log::debug!("read_ahead_kb={kb} not set: {e}");
    }
}

fn try_set((major, minor): DeviceId, kb: u32) -> Result<(), String> {
    // Only ever a FUSE mount's backing device: FUSE names it after the superblock's
    // anonymous device, major 0; a disk's setting is never touched.
    if major != 0 {
        return Err(format!("device {major}:{minor} is not a FUSE mount's"));
    }
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    std::fs::write(&path, kb.to_string()).map_err(|e| format!("{path}: {e}"))
}
