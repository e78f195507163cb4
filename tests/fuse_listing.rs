//! A walk that lists without stat-ing (as `find` does) gets files listed bare by
//! squashfuse-rs (no attributes, so the kernel makes no inode for them): what it reads must
//! still be what the kernel's own driver lists (names, order, `d_ino`, `d_type`, "." and
//! ".."), and a `stat` of the same entries afterwards must still give the kernel's answers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::corpus::images;
use e2e_tests::snapshot::{compare, from_dir, Ignore};
use e2e_tests::sys::{
    built_binary, fuse_available, is_mounted, is_root, listing_walk, FuseMount, LoopMount,
};

/// Mounts `image` in the foreground with `-d`, its log in `log`; unmounted on drop.
fn debug_mount(image: &Path, offset: u64, dir: &Path, log: &Path) -> std::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new(built_binary("squashfuse-rs"))
        .args(["-f", "-d", "-o", &format!("offset={offset}")])
        .arg(image)
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !is_mounted(dir) {
        assert!(start.elapsed() < Duration::from_secs(20), "mount timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_walk_by_d_type_lists_what_the_kernel_lists_and_stats_after_it_agree() {
    if !is_root() || !fuse_available() {
        eprintln!("SKIPPED: needs root (for the kernel's loop mount) and /dev/fuse; CI has both");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("sqfs-listing-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut bare_listings = 0;
    for image in images().iter().filter(|i| i.kernel_readable()) {
        let kernel = LoopMount::new(&image.path, image.offset).unwrap();
        let dir = scratch.join(&image.name);
        let log = scratch.join(format!("{}.log", image.name));
        let mut daemon = debug_mount(&image.path, image.offset, &dir, &log);
        {
            let fuse = FuseMount { dir: dir.clone() };
            let want = listing_walk(&kernel.dir);
            let got = listing_walk(&fuse.dir);
            if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
                failures.push(format!(
                    "{}: listing differs at entry {i}: kernel {:?}, squashfuse-rs {:?}",
                    image.name,
                    want.get(i)
                        .map(|(p, ino, t)| (String::from_utf8_lossy(p), ino, t)),
                    got.get(i)
                        .map(|(p, ino, t)| (String::from_utf8_lossy(p), ino, t)),
                ));
            }
            // The same thread now stats everything it listed: files listed bare are
            // looked up, and must answer as the kernel does.
            if let Err(diff) = compare(
                &from_dir(&kernel.dir),
                &from_dir(&fuse.dir),
                Ignore::default(),
            ) {
                failures.push(format!(
                    "{} (stat after a bare listing):\n{diff}",
                    image.name
                ));
            }
        }
        daemon.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        bare_listings += text.matches("files bare true").count();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Each image's walk is past its first two listings after its root: the rest of its
    // directories must have come with bare files, or this test checked nothing new.
    assert!(bare_listings > 0, "no listing was made with bare files");
}
