//! A directory of 100,000 entries: lookups go through the directory index and find every
//! name (and no absent one), and a listing resumed at any entry's cookie continues exactly
//! after that entry, as FUSE readdir needs.

use std::process::Command;

use sqfs::internals::{self, InodeBody};
use sqfs::Archive;

const ENTRIES: usize = 100_000;

#[test]
fn index_lookups_and_resumed_listings_in_a_huge_directory() {
    let base = std::env::temp_dir().join(format!("sqfs-bigdir-{}", std::process::id()));
    let src = base.join("src");
    let dir = src.join("d");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..ENTRIES {
        // Names of different lengths, so headers and index entries fall at odd places.
        std::fs::File::create(dir.join(format!("entry-{i}-{}", "x".repeat(i % 37)))).unwrap();
    }
    let image = base.join("big.sqfs");
    let status = Command::new("mksquashfs")
        .arg(&src)
        .arg(&image)
        .args(["-no-progress", "-quiet", "-comp", "gzip"])
        .status()
        .expect("mksquashfs (squashfs-tools) must be installed");
    assert!(status.success());

    let archive = Archive::open(&image).unwrap();
    let d = archive.lookup_path("/d").unwrap();
    match internals::body(&d) {
        InodeBody::Directory(info) => {
            assert!(info.index_count > 100, "the directory has an index to use")
        }
        other => panic!("/d is {other:?}"),
    }
    let listing: Vec<_> = archive.read_dir(&d).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(listing.len(), ENTRIES);
    assert!(
        listing.windows(2).all(|w| w[0].name < w[1].name),
        "listing not in sorted on-disk order"
    );

    // Every name: found, its neighbour absent, and the listing resumed right after it.
    for (i, entry) in listing.iter().enumerate() {
        let found = archive
            .lookup_entry(&d, &entry.name)
            .unwrap()
            .expect("present name found");
        assert_eq!(found, *entry, "lookup of entry {i}");
        let mut absent = entry.name.clone();
        absent.push(b'~');
        if listing.get(i + 1).is_none_or(|next| next.name != absent) {
            assert!(archive.lookup_entry(&d, &absent).unwrap().is_none());
        }
        let rest: Vec<_> = archive
            .read_dir_from(&d, entry.cookie)
            .unwrap()
            .take(3)
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(
            rest.as_slice(),
            &listing[i + 1..(i + 4).min(ENTRIES)],
            "resume after entry {i}"
        );
    }
    // The last entry and names sorting before the first and after the last.
    assert!(archive
        .read_dir_from(&d, listing[ENTRIES - 1].cookie)
        .unwrap()
        .next()
        .is_none());
    assert!(archive.lookup_entry(&d, b"a").unwrap().is_none());
    assert!(archive.lookup_entry(&d, b"zzz").unwrap().is_none());
    let _ = std::fs::remove_dir_all(&base);
}
