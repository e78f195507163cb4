//! What `sqfs extract` holds in memory does not grow with how deep an image's entries are:
//! a hostile image of a few kilobytes (a chain of directories with 250-byte names, many
//! entries at its bottom) must not make it allocate hundreds of megabytes.
//!
//! The images are made at run time (see `support`).

#[path = "../../sqfs/tests/support/peak_alloc.rs"]
mod peak_alloc;
mod support;

use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode};
use sqfs::{Archive, OpenOptions};
use sqfs_tool::extract::{extract, Options};
use support::{deep_tree, pack, Scratch};

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc::new();

/// Extracts `image` into `dest` in this process; returns the most bytes it had allocated
/// at once beyond what was live before.
fn extract_peak(image: &Path, dest: &Path) -> usize {
    let options = OpenOptions {
        cache_bytes: 1 << 20,
        ..OpenOptions::default()
    };
    let archive = Archive::open_file(std::fs::File::open(image).unwrap(), &options).unwrap();
    let options = Options {
        force: false,
        processors: 1,
        progress: false,
    };
    let base = ALLOC.reset_peak();
    extract(&archive, "/", dest, &options).unwrap();
    ALLOC.peak() - base
}

/// 2,000 fifos 300 directories (75 KB of path) down: each is remembered in case a hard
/// link to it follows. By its full path that was 150 MB; by its directory and name, a few.
#[test]
fn many_entries_deep_down_are_remembered_by_name() {
    let s = Scratch::new("deep-fifos");
    let tree = s.0.join("tree");
    std::fs::create_dir(&tree).unwrap();
    let fifos = 2000;
    deep_tree(&tree, &"n".repeat(250), 300, |bottom| {
        for i in 0..fifos {
            let name = format!("p{i:05}");
            rfs::mknodat(
                bottom,
                name.as_str(),
                FileType::Fifo,
                Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap();
        }
    });
    let image = s.0.join("image.sqfs");
    pack(&tree, &image);
    let peak = extract_peak(&image, &s.0.join("out"));
    eprintln!("peak allocation: {peak} bytes");
    assert!(peak < 16 << 20, "extract allocated {peak} bytes at once");
}
