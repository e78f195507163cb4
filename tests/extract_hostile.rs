//! `sqfs extract` of hostile images never touches anything outside its destination.
//!
//! Each image is built at run time with mksquashfs from a small tree, its directory table
//! left uncompressed (`-noI -noD -noF -noX`) so that one entry's name can be patched in
//! place: into the name of the entry before it (a duplicate: "symlink then file" is the
//! CVE-2021-40153 / CVE-2021-41072 class of unsquashfs bugs), into `.` or `..`, or into a
//! name holding `/`. Each case then checks what a user would: the extraction fails with one
//! error line, and every file, directory and link outside the destination (a "host"
//! directory the image's symlinks point at, the scratch directory around the destination)
//! is exactly as before: same names, contents, modes, owners, link counts, mtimes and
//! ctimes (a chmod or chown to the same value still changes the ctime). Every case runs as
//! root and, when the tests are root, again as the plain user `chtest` (owning the host
//! files, so that a write through a symlink would succeed for them too), with and without
//! `-f`.
//!
//! The `extract` fuzz target's body (`fuzz/fuzz_targets/extract_check.rs`) is compiled in
//! here too: its seeds, and every input it once found, are replayed through it.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e_tests::hostile::table_regions;
use e2e_tests::sys::{built_binary, is_root};

const PLAIN_USER: &str = "chtest";

#[path = "../fuzz/fuzz_targets/extract_check.rs"]
mod extract_check;

/// A scratch directory: `tree/` (what the image is built from), `image.sqfs`, `host/`
/// (outside the destination: what a hostile image aims at) and `out/` (the destination).
struct Scene {
    dir: PathBuf,
    image: PathBuf,
}

impl Scene {
    /// Builds the image from the tree `make_tree(tree, host)` lays out; `host/victim` and
    /// `host/sub/` exist beforehand.
    fn new(name: &str, make_tree: impl FnOnce(&Path, &Path)) -> Scene {
        let dir = std::env::temp_dir().join(format!("sqfs-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tree, host) = (dir.join("tree"), dir.join("host"));
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::create_dir_all(host.join("sub")).unwrap();
        std::fs::write(host.join("victim"), "original\n").unwrap();
        make_tree(&tree, &host);
        let image = dir.join("image.sqfs");
        let out = Command::new("mksquashfs")
            .arg(&tree)
            .arg(&image)
            .args(["-noI", "-noD", "-noF", "-noX", "-quiet", "-no-progress"])
            .output()
            .expect("mksquashfs (squashfs-tools) is needed");
        assert!(
            out.status.success(),
            "mksquashfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if is_root() {
            chown_to_plain_user(&dir);
        }
        Scene { dir, image }
    }

    /// The image's bytes.
    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.image).unwrap()
    }

    /// Renames the entry `old` to `new` (same length) in the directory table.
    fn patch(&self, old: &str, new: &str) -> &Self {
        assert_eq!(old.len(), new.len());
        let mut image = std::fs::read(&self.image).unwrap();
        let (_, start, stop) = table_regions(&image)
            .into_iter()
            .find(|(name, _, _)| *name == "directories")
            .unwrap();
        // An entry's name is stored after its length - 1 as a little-endian u16.
        let mut needle = ((old.len() - 1) as u16).to_le_bytes().to_vec();
        needle.extend_from_slice(old.as_bytes());
        let hits: Vec<usize> = (start..stop - needle.len())
            .filter(|&i| image[i..i + needle.len()] == needle[..])
            .collect();
        assert_eq!(hits.len(), 1, "entry {old:?} in the directory table");
        image[hits[0] + 2..hits[0] + needle.len()].copy_from_slice(new.as_bytes());
        std::fs::write(&self.image, image).unwrap();
        self
    }

    /// A fresh, empty `out/` for `user`.
    fn fresh_destination(&self, user: Option<&str>) {
        let out = self.dir.join("out");
        remove_tree(&out);
        std::fs::create_dir(&out).unwrap();
        if user.is_some() {
            chown_to_plain_user(&out);
        }
    }

    /// Runs `sqfs extract [extra] IMAGE out` as `user` (None: this process's user).
    fn extract(&self, user: Option<&str>, extra: &[&str]) -> Output {
        let out = self.dir.join("out");
        let mut cmd = match user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                // A copy the user can reach: the clone may be in a 0700 directory.
                cmd.args(["-u", user, "--"])
                    .arg(e2e_tests::reachable::binary("sqfs"));
                cmd
            }
            None => Command::new(built_binary("sqfs")),
        };
        cmd.arg("extract")
            .args(extra)
            .arg(&self.image)
            .arg(&out)
            .output()
            .unwrap()
    }

    /// Extraction must fail with one error line and leave everything outside `out/` as
    /// it was, for each user and with and without `-f`.
    fn assert_refused(&self) {
        for user in users() {
            for extra in [&[][..], &["-f"][..]] {
                self.fresh_destination(user);
                let before = outside_state(&self.dir);
                let out = self.extract(user, extra);
                let after = outside_state(&self.dir);
                let err = String::from_utf8_lossy(&out.stderr);
                let who = format!("{} {extra:?}", user.unwrap_or("this user"));
                assert_state_eq(&before, &after, &who);
                assert!(!out.status.success(), "{who}: extraction succeeded");
                assert!(
                    err.lines().count() == 1 && err.starts_with("sqfs: error: "),
                    "{who}: {err}"
                );
            }
        }
        remove_tree(&self.dir);
    }
}

/// This process's user, and the plain user too when that is root.
fn users() -> Vec<Option<&'static str>> {
    if is_root() {
        vec![None, Some(PLAIN_USER)]
    } else {
        eprintln!("not root: the cases run as this user only");
        vec![None]
    }
}

fn chown_to_plain_user(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "--no-dereference", PLAIN_USER])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown -R {PLAIN_USER} {}", path.display());
}

fn remove_tree(dir: &Path) {
    // Extracted trees may hold mode-000 directories: make them removable first.
    if dir.exists() {
        let _ = Command::new("chmod")
            .args(["-R", "u+rwx"])
            .arg(dir)
            .status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// What `lstat`, `readlink` and the bytes say about one entry.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
}

/// Every entry under `scratch` except what is inside `scratch/out`, and `scratch` itself.
fn outside_state(scratch: &Path) -> BTreeMap<PathBuf, Entry> {
    fn visit(path: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let m = std::fs::symlink_metadata(path).unwrap();
        let entry = Entry {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            nlink: m.nlink(),
            ino: m.ino(),
            // A directory's size changes with its entries on some filesystems.
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            content: m.is_file().then(|| std::fs::read(path).unwrap()),
            target: m
                .file_type()
                .is_symlink()
                .then(|| std::fs::read_link(path).unwrap()),
        };
        out.insert(path.to_path_buf(), entry);
        if m.is_dir() && path != skip {
            let mut names: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                visit(&p, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(scratch, &scratch.join("out"), &mut out);
    // `out` itself is the destination: its attributes are the image root's.
    out.remove(&scratch.join("out"));
    out
}

fn assert_state_eq(before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>, who: &str) {
    for (path, entry) in after {
        match before.get(path) {
            None => panic!(
                "{who}: {} was created outside the destination",
                path.display()
            ),
            Some(old) => assert_eq!(old, entry, "{who}: {} changed", path.display()),
        }
    }
    for path in before.keys() {
        assert!(
            after.contains_key(path),
            "{who}: {} was removed",
            path.display()
        );
    }
}

fn file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn symlink_then_file_of_the_same_name() {
    Scene::new("symlink-file", |tree, host| {
        symlink(host.join("victim"), tree.join("zz1")).unwrap();
        file(&tree.join("zz2"), "written through the symlink\n");
    })
    .patch("zz2", "zz1")
    .assert_refused();
}

#[test]
fn symlink_then_directory_of_the_same_name() {
    Scene::new("symlink-dir", |tree, host| {
        symlink(host, tree.join("zz1")).unwrap();
        std::fs::create_dir(tree.join("zz2")).unwrap();
        file(&tree.join("zz2/victim"), "written through the symlink\n");
        file(&tree.join("zz2/new"), "created through the symlink\n");
    })
    .patch("zz2", "zz1")
    .assert_refused();
}

#[test]
fn directory_then_file_of_the_same_name() {
    Scene::new("dir-file", |tree, _| {
        std::fs::create_dir(tree.join("zz1")).unwrap();
        file(&tree.join("zz1/inner"), "inner\n");
        file(&tree.join("zz2"), "a file over the directory\n");
    })
    .patch("zz2", "zz1")
    .assert_refused();
}

#[test]
fn a_directory_named_dot_dot() {
    // `..` would be the destination's parent, the scratch directory.
    Scene::new("dotdot-dir", |tree, _| {
        std::fs::create_dir(tree.join("Q9")).unwrap();
        file(&tree.join("Q9/victim"), "beside the destination\n");
    })
    .patch("Q9", "..")
    .assert_refused();
}

#[test]
fn a_file_named_dot() {
    Scene::new("dot-file", |tree, _| {
        file(&tree.join("Q"), "over the destination itself\n");
    })
    .patch("Q", ".")
    .assert_refused();
}

#[test]
fn a_file_named_dot_dot_slash_victim() {
    Scene::new("dotdot-slash", |tree, _| {
        file(&tree.join("zzzzzzzzz"), "beside the destination\n");
    })
    .patch("zzzzzzzzz", "../victim")
    .assert_refused();
}

#[test]
fn a_name_holding_a_slash_through_a_symlink() {
    // `zz1/vv` sorts right after `zz1`: no duplicate, only the `/` gives it away.
    Scene::new("slash-name", |tree, host| {
        symlink(host, tree.join("zz1")).unwrap();
        file(&tree.join("zz1_vv"), "created through the symlink\n");
    })
    .patch("zz1_vv", "zz1/vv")
    .assert_refused();
}

#[test]
fn a_symlink_chain_that_leads_out() {
    // zz1 -> zz2 -> ../host/victim (relative: out of the destination), then a file zz1.
    Scene::new("chain", |tree, _| {
        symlink("zz2", tree.join("zz1")).unwrap();
        symlink("../host/victim", tree.join("zz2")).unwrap();
        file(&tree.join("zz3"), "written through two symlinks\n");
    })
    .patch("zz3", "zz1")
    .assert_refused();
}

#[test]
fn a_hard_link_to_a_file_first_written_through_a_symlink() {
    // zz1 -> host/victim, then the file zz1 whose other name is zz3: the file must not be
    // written through the symlink, and zz3 must not become a hard link to host/victim.
    Scene::new("hard-link", |tree, host| {
        symlink(host.join("victim"), tree.join("zz1")).unwrap();
        file(
            &tree.join("zz2"),
            "written and linked through the symlink\n",
        );
        std::fs::hard_link(tree.join("zz2"), tree.join("zz3")).unwrap();
    })
    .patch("zz2", "zz1")
    .assert_refused();
}

#[test]
fn a_hard_link_to_a_file_first_written_outside() {
    // The file's first name leads out through a symlink (`zz1/vv`, host/vv); its second
    // name, zz3, would be a hard link to that outside file.
    Scene::new("slash-hard-link", |tree, host| {
        symlink(host, tree.join("zz1")).unwrap();
        file(&tree.join("zz2_vv"), "linked from outside\n");
        std::fs::hard_link(tree.join("zz2_vv"), tree.join("zz3")).unwrap();
    })
    .patch("zz2_vv", "zz1/vv")
    .assert_refused();
}

/// The legitimate counterpart: symlinks that point out of the destination are written as
/// symlinks, and nothing is written through them.
#[test]
fn symlinks_pointing_outside_are_extracted_as_symlinks() {
    let scene = Scene::new("legit", |tree, host| {
        symlink(host.join("victim"), tree.join("abs")).unwrap();
        symlink("../host", tree.join("rel")).unwrap();
        std::fs::create_dir(tree.join("dir")).unwrap();
        file(&tree.join("dir/file"), "inside\n");
    });
    for user in users() {
        scene.fresh_destination(user);
        let before = outside_state(&scene.dir);
        let out = scene.extract(user, &[]);
        let who = user.unwrap_or("this user");
        assert!(
            out.status.success(),
            "{who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_state_eq(&before, &outside_state(&scene.dir), who);
        let dest = scene.dir.join("out");
        assert_eq!(
            std::fs::read_link(dest.join("rel")).unwrap(),
            Path::new("../host")
        );
        assert_eq!(std::fs::read(dest.join("dir/file")).unwrap(), b"inside\n");
    }
    remove_tree(&scene.dir);
}

/// Seeds of the `extract` fuzz target: the committed tiny images, and images whose
/// symlinks point at the fuzz sandbox's sentinels (`../sentinel-file` from the
/// destination is `work/sentinel-file`), as built and with one name changed into a
/// duplicate (symlink then file, symlink then directory). Names differ in one byte, so a
/// single mutation makes another duplicate.
fn extract_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let tiny = e2e_tests::corpus::repo_root().join("testdata/tiny");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&tiny)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqfs"))
        .collect();
    names.sort();
    for p in names {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        seeds.push((name, std::fs::read(&p).unwrap()));
    }
    let sentinels = |tree: &Path, _: &Path| {
        symlink("../sentinel-file", tree.join("s1")).unwrap();
        symlink("../../sentinel-dir", tree.join("s2")).unwrap();
        symlink("../sentinel-link", tree.join("s3")).unwrap();
        file(&tree.join("s4"), "data\n");
        std::fs::create_dir(tree.join("s5")).unwrap();
        file(&tree.join("s5/inner"), "inner\n");
        std::fs::hard_link(tree.join("s4"), tree.join("s6")).unwrap();
        symlink("s1", tree.join("s7")).unwrap();
    };
    for (tag, patch) in [
        ("sentinels", None),
        ("sentinels-symlink-then-file", Some(("s4", "s1"))),
        ("sentinels-symlink-then-dir", Some(("s5", "s2"))),
    ] {
        let scene = Scene::new(&format!("seed-{tag}"), sentinels);
        if let Some((old, new)) = patch {
            scene.patch(old, new);
        }
        seeds.push((tag.to_string(), scene.bytes()));
        remove_tree(&scene.dir);
    }
    seeds
}

/// Replays the fuzz target's seeds and findings through its own body (which panics if
/// anything outside its sandbox's destination changed). With `SQFS_FUZZ_SEEDS=DIR` the
/// seeds are also written to `DIR/extract/`, where `fuzz/ci.sh` starts the fuzzer from.
#[test]
fn extract_fuzz_seeds_and_findings_stay_in_the_sandbox() {
    let seeds = extract_seeds();
    e2e_tests::fuzzing::write_seeds("extract", &seeds);
    let sandbox = extract_check::Sandbox::new("replay");
    for (name, data) in seeds
        .iter()
        .chain(&e2e_tests::fuzzing::regressions("extract"))
    {
        let result = sandbox.extract(data);
        let opened = result.is_some();
        let extracted = matches!(result, Some(Ok(_)));
        // The seeds must reach the code they are for: valid images extract, the
        // duplicates are refused.
        if name.starts_with("tiny") {
            assert!(extracted, "{name}: {result:?}");
        } else if name == "sentinels" {
            assert!(extracted, "{name}: {result:?}");
            let out = sandbox.out();
            assert_eq!(
                std::fs::read_link(out.join("s1")).unwrap(),
                Path::new("../sentinel-file")
            );
            assert_eq!(std::fs::read(out.join("s6")).unwrap(), b"data\n");
        } else if name.starts_with("sentinels-") {
            assert!(opened && !extracted, "{name}: {result:?}");
        }
    }
}
