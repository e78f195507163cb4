//! What a process that serves in the background does with the terminal it was started
//! from: the mount daemon, its auto_unmount watcher, and ch-run's supervisor.

use std::os::fd::AsRawFd;

/// A daemon keeps no terminal: stdin, stdout and stderr go to /dev/null.
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = std::env::set_current_dir("/");
}
