//! `sqfs pack --tar`, end to end: GNU tar's archives of the corpus tree (PAX with xattrs
//! and sparse maps, and GNU's own format with long names and old sparse members) mount in
//! the kernel as the tree packed from its directory; standard input and compressed
//! archives give the same bytes; later members replace earlier ones as extraction would;
//! the options apply; hostile archives fail in one line and leave no image.

#[path = "raw_tar.rs"]
mod raw_tar;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use e2e_tests::corpus::{images, repo_root};
use e2e_tests::packing::{self, files_in, same_tree, succeeded, Scratch};
use e2e_tests::skip::{needs, Need};
use e2e_tests::snapshot::{from_archive, from_dir, sorted, Node};
use e2e_tests::sys::{built_binary, LoopMount};
use raw_tar::{Header, Tar};
use sqfs::{Archive, FileType};

/// Runs `sqfs pack --tar SOURCE IMAGE ARGS... -quiet`, with `stdin` fed in if given.
fn pack_tar_with(
    source: &str,
    image: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new(built_binary("sqfs"));
    cmd.args(["pack", "--tar", source])
        .arg(image)
        .args(args)
        .arg("-quiet")
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // The packer may stop reading early (a bad archive): a broken pipe is its answer.
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().unwrap()
}

/// Packs the archive at `tar` into `image`; must succeed without a word.
fn pack_tar(tar: &Path, image: &Path, args: &[&str]) {
    let out = pack_tar_with(tar.to_str().unwrap(), image, args, &[], None);
    succeeded(&out, &format!("sqfs pack --tar {} {args:?}", tar.display()));
}

/// Packs `bytes` (an archive) given on standard input.
fn pack_stdin(bytes: &[u8], image: &Path, args: &[&str]) -> Output {
    pack_tar_with("-", image, args, &[], Some(bytes))
}

/// `sqfs pack DIR IMAGE ARGS... -quiet`.
fn pack_dir(dir: &Path, image: &Path, args: &[&str]) {
    let out = Command::new(built_binary("sqfs"))
        .arg("pack")
        .arg(dir)
        .arg(image)
        .args(args)
        .arg("-quiet")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    succeeded(&out, "sqfs pack DIR");
}

/// GNU tar's archive of everything in `dir`, with `args`.
fn gnu_tar(dir: &Path, tar: &Path, args: &[&str]) {
    let out = Command::new("tar")
        .args(args)
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .output()
        .unwrap();
    // GNU tar leaves sockets out with a warning (exit 0): the only line it may print.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tar {args:?}: {stderr}");
    assert!(
        stderr.lines().all(|l| l.ends_with("socket ignored")),
        "tar {args:?}: {stderr}"
    );
}

/// GNU tar 1.34 stores a hard-linked FIFO as two FIFOs (it links regular files and
/// symlinks only): the tree as its archive holds it has the corpus's two FIFO names as
/// two inodes.
fn as_gnu_tar_keeps_it(mut nodes: Vec<Node>) -> Vec<Node> {
    let mut fresh = u64::MAX;
    for n in &mut nodes {
        if n.path.starts_with(b"/hardlinks/fifo-") {
            assert_eq!(n.nlink, 2, "the corpus's FIFOs are hard links");
            (n.nlink, n.ino) = (1, fresh);
            fresh -= 1;
        }
    }
    nodes
}

#[test]
fn gnu_tars_of_the_corpus_tree_mount_as_the_tree_packed_from_its_directory() {
    if !needs(&[Need::Root, Need::Corpus]) {
        return;
    }
    let _ = images();
    let tree = repo_root().join("testdata/out/tree");
    let scratch = Scratch::new("sqfs-pack-tar", "corpus");
    // GNU tar leaves the socket out; the directory is packed without it to match.
    let dir_image = scratch.path("dir.sqfs");
    pack_dir(&tree, &dir_image, &["-comp", "zstd", "-e", "dev/socket"]);
    let dir_mount = LoopMount::new(&dir_image, 0).unwrap();
    let expected = as_gnu_tar_keeps_it(sorted(from_dir(&dir_mount.dir)));
    assert!(expected
        .iter()
        .any(|n| n.path == b"/sparse/huge-4.5GiB+12345"));
    assert!(!expected.iter().any(|n| n.path == b"/dev/socket"));
    let without_xattrs: Vec<Node> = expected
        .iter()
        .map(|n| Node {
            xattrs: Vec::new(),
            ..n.clone()
        })
        .collect();
    // (name, GNU tar's options, sqfs pack's, the tree expected)
    type Run<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [Node]);
    let runs: &[Run] = &[
        // PAX: SCHILY.xattr records (values with newlines), sparse format 1.0, PAX names.
        (
            "posix",
            &[
                "--format=posix",
                "--sparse",
                "--xattrs",
                "--xattrs-include=*",
            ],
            &["-comp", "zstd"],
            &expected,
        ),
        // GNU's format: ././@LongLink names and link targets, old sparse members ('S').
        (
            "gnu",
            &["--format=gnu", "--sparse"],
            &["-comp", "gzip", "-p", "1"],
            &without_xattrs,
        ),
    ];
    for (name, tar_args, pack_args, expected) in runs {
        let tar = scratch.path(&format!("{name}.tar"));
        gnu_tar(&tree, &tar, tar_args);
        let image = scratch.path(&format!("{name}.sqfs"));
        pack_tar(&tar, &image, pack_args);
        std::fs::remove_file(&tar).unwrap();
        let mount = LoopMount::new(&image, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mounted = sorted(from_dir(&mount.dir));
        same_tree(&format!("{name}: kernel mount"), expected, &mounted);
        drop(mount);
        let archive = Archive::open(&image).unwrap();
        let library = sorted(from_archive(&archive).unwrap());
        same_tree(&format!("{name}: library"), expected, &library);
        // The sparse file's holes are holes in the image, not blocks of zeros.
        assert!(
            std::fs::metadata(&image).unwrap().len() < 64 << 20,
            "{name}: the 4.5 GiB sparse file was stored as data"
        );
        eprintln!("{name}: {} nodes as the directory's image", mounted.len());
    }
}

/// A small tree with a hard link, a symlink, a long name and a sparse file.
/// `packing::small_tree` with a long name and a sparse file.
fn small_tree(root: &Path) {
    packing::small_tree(root);
    std::fs::write(root.join(format!("long-{}", "n".repeat(150))), b"long").unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"middle", 2 << 20).unwrap();
}

#[test]
fn standard_input_and_compressed_archives_give_the_same_bytes() {
    let scratch = Scratch::new("sqfs-pack-tar", "stdin");
    let tree = scratch.path("tree");
    small_tree(&tree);
    let tar = scratch.path("t.tar");
    gnu_tar(&tree, &tar, &["--format=posix", "--sparse"]);
    let plain = std::fs::read(&tar).unwrap();
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let reference = scratch.path("reference.sqfs");
    let out = pack_tar_with(
        tar.to_str().unwrap(),
        &reference,
        &["-comp", "zstd"],
        &epoch,
        None,
    );
    succeeded(&out, "file");
    let reference = std::fs::read(&reference).unwrap();
    let a = Archive::open(scratch.path("reference.sqfs")).unwrap();
    assert_eq!(a.superblock().mkfs_time, 1_700_000_000);
    let nodes = from_archive(&a).unwrap();
    let link = |p: &str| a.lookup_path(p).unwrap();
    assert_eq!(link("/sub/a-link").reference(), link("/a").reference());
    assert_eq!(link("/a").nlink(), 2);
    assert_eq!(a.read_link(&link("/etc-link")).unwrap(), b"/etc");
    assert!(nodes.iter().any(|n| n.path.len() > 150));
    let sparse = link("/sparse");
    let mut middle = [0u8; 6];
    let data = a.file_data(&sparse).unwrap();
    a.read_data(&data, 2 << 20, &mut middle).unwrap();
    assert_eq!(&middle, b"middle");

    let compress = |program: &str, args: &[&str]| -> Vec<u8> {
        let out = Command::new(program)
            .args(args)
            .arg("-c")
            .arg(&tar)
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}");
        out.stdout
    };
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("plain", plain),
        ("gzip", compress("gzip", &[])),
        ("zstd", compress("zstd", &["-q"])),
        ("xz", compress("xz", &[])),
    ];
    for (name, bytes) in &inputs {
        for threads in ["1", "2"] {
            let image = scratch.path(&format!("{name}-{threads}.sqfs"));
            let out = pack_tar_with(
                "-",
                &image,
                &["-comp", "zstd", "-p", threads],
                &epoch,
                Some(bytes),
            );
            succeeded(&out, &format!("{name} on standard input"));
            assert!(
                std::fs::read(&image).unwrap() == reference,
                "{name}, -p {threads}: other bytes"
            );
        }
        let file = scratch.path(&format!("input-{name}"));
        std::fs::write(&file, bytes).unwrap();
        let image = scratch.path(&format!("{name}-file.sqfs"));
        let out = pack_tar_with(
            file.to_str().unwrap(),
            &image,
            &["-comp", "zstd"],
            &epoch,
            None,
        );
        succeeded(&out, &format!("{name} file"));
        assert!(
            std::fs::read(&image).unwrap() == reference,
            "{name} file: other bytes"
        );
    }
}

fn read_file(a: &Archive, path: &str) -> Vec<u8> {
    let inode = a
        .lookup_path(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    a.read_file(&inode, 1 << 20).unwrap()
}

#[test]
fn later_members_replace_earlier_ones_as_extraction_would() {
    let scratch = Scratch::new("sqfs-pack-tar", "replace");
    let mut t = Tar::default();
    t.file("a", b"first")
        .file("./a", b"second")
        // A directory replaced by a file: what was under it goes.
        .dir("d", 0o755)
        .file("d/x", b"under d")
        .file("d/shared", b"linked from outside d")
        .link(b'1', "outside", "d/shared")
        .file("d", b"d is a file now")
        // A file replaced by a directory.
        .file("f", b"f was a file")
        .dir("f", 0o700)
        .file("f/y", b"y")
        // A hard link's target replaced: the link keeps the old content.
        .file("t", b"old t")
        .link(b'1', "h", "t")
        .file("t", b"new t")
        // A directory again: its entries stay, its mode is the later one's.
        .dir("keep", 0o700)
        .file("keep/z", b"z")
        .dir("keep/", 0o750)
        // A symlink replaced by a hard link to a file, then the same link again.
        .link(b'2', "s", "nowhere")
        .link(b'1', "s", "a")
        .link(b'1', "s", "a");
    let image = scratch.path("image.sqfs");
    succeeded(&pack_stdin(&t.finish(), &image, &[]), "pack");
    let a = Archive::open(&image).unwrap();
    let paths: Vec<String> = from_archive(&a)
        .unwrap()
        .iter()
        .map(|n| String::from_utf8_lossy(&n.path).into_owned())
        .collect();
    assert_eq!(
        paths,
        ["", "/a", "/d", "/f", "/f/y", "/h", "/keep", "/keep/z", "/outside", "/s", "/t"]
    );
    assert_eq!(read_file(&a, "/a"), b"second");
    assert_eq!(read_file(&a, "/d"), b"d is a file now");
    assert_eq!(read_file(&a, "/h"), b"old t");
    assert_eq!(read_file(&a, "/t"), b"new t");
    assert_eq!(read_file(&a, "/outside"), b"linked from outside d");
    let node = |p: &str| a.lookup_path(p).unwrap();
    // One name each left, but /a and /s, which are one inode.
    for (path, nlink) in [("/h", 1), ("/t", 1), ("/outside", 1), ("/a", 2), ("/s", 2)] {
        assert_eq!(node(path).nlink(), nlink, "{path}");
    }
    assert_eq!(node("/s").reference(), node("/a").reference());
    assert_eq!(node("/f").kind(), FileType::Directory);
    assert_eq!(a.attr(&node("/f")).unwrap().mode & 0o7777, 0o700);
    assert_eq!(a.attr(&node("/keep")).unwrap().mode & 0o7777, 0o750);
}

#[test]
fn members_keep_their_fields_and_the_options_apply() {
    let scratch = Scratch::new("sqfs-pack-tar", "fields");
    let mut t = Tar::default();
    // Parents only implied by a name; a uid past ustar's 7 octal digits; a name past 100
    // bytes in a PAX record; xattrs, one value holding a newline and `=`, one under a
    // prefix SquashFS cannot store, one name longer than Linux's; a char device, a FIFO;
    // a PAX time before the epoch.
    let mut deep = Header::new(b'0', "x");
    deep.size = 5;
    let long = format!("implied/parents/{}", "l".repeat(200));
    let long_xattr = format!("SCHILY.xattr.user.{}", "x".repeat(300));
    t.member(
        &deep,
        b"hello",
        &[
            ("path", long.as_bytes()),
            ("uid", b"4000000"),
            ("gid", b"3000000"),
            ("mtime", b"1234567890.75"),
            ("SCHILY.xattr.user.note", b"two\nlines=yes"),
            ("SCHILY.xattr.trusted.t", b"t"),
            ("SCHILY.xattr.system.posix_acl_access", b"\x02\0\0\0"),
            (&long_xattr, b"too long a name"),
        ],
    );
    let mut dev = Header::new(b'3', "dev/tty9");
    (dev.major, dev.minor, dev.mode) = (4, 9, 0o620);
    t.member(&dev, &[], &[]);
    let mut fifo = Header::new(b'6', "dev/fifo");
    fifo.mtime = 99;
    t.member(&fifo, &[], &[("mtime", b"-1.5")]);
    t.file("excluded/gone", b"gone").file("kept", b"kept");
    let archive = t.finish();

    let image = scratch.path("image.sqfs");
    let out = pack_stdin(&archive, &image, &["-mkfs-time", "777", "-e", "excluded"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("sqfs: warning: standard input: implied/parents/lll")
            && stderr.contains("extended attribute system.posix_acl_access not stored")
            && stderr.contains("extended attribute user.xxx")
            && stderr.contains("names of at most 255 bytes")
            && stderr.lines().count() == 2,
        "{stderr}"
    );
    let a = Archive::open(&image).unwrap();
    let attr = |p: &str| a.attr(&a.lookup_path(p).unwrap()).unwrap();
    let file = attr(&format!("/{long}"));
    assert_eq!(
        (file.uid, file.gid, file.mtime, file.mode & 0o7777),
        (4_000_000, 3_000_000, 1_234_567_890, 0o644)
    );
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = a
        .xattrs(&a.lookup_path(&format!("/{long}")).unwrap())
        .unwrap()
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect();
    xattrs.sort();
    assert_eq!(
        xattrs,
        [
            (b"trusted.t".to_vec(), b"t".to_vec()),
            (b"user.note".to_vec(), b"two\nlines=yes".to_vec())
        ]
    );
    // Implied directories (and the root): 0755, root's, the image's time.
    for dir in ["", "/implied", "/implied/parents", "/dev"] {
        let d = attr(if dir.is_empty() { "/" } else { dir });
        assert_eq!(
            (d.mode & 0o7777, d.uid, d.gid, d.mtime),
            (0o755, 0, 0, 777),
            "{dir:?}"
        );
    }
    let tty = attr("/dev/tty9");
    assert_eq!(
        (tty.mode & 0o170000, tty.rdev, tty.mode & 0o7777),
        (0o020000, libc::makedev(4, 9), 0o620)
    );
    assert_eq!(
        attr("/dev/fifo").mtime,
        0,
        "a time before the epoch is stored as 0"
    );
    assert!(a.lookup_path("/excluded").is_err());
    assert_eq!(read_file(&a, "/kept"), b"kept");

    // Owners, times and xattrs as asked.
    let out = pack_stdin(
        &archive,
        &image,
        &[
            "-all-root",
            "-force-gid",
            "55",
            "-all-time",
            "42",
            "-no-xattrs",
            "-b",
            "4K",
            "-comp",
            "lz4",
        ],
    );
    succeeded(&out, "options");
    let a = Archive::open(&image).unwrap();
    assert_eq!(a.superblock().block_size, 4096);
    for n in from_archive(&a).unwrap() {
        assert_eq!(
            (n.uid, n.gid, n.mtime),
            (0, 55, 42),
            "{}",
            String::from_utf8_lossy(&n.path)
        );
        assert!(n.xattrs.is_empty());
    }
    // SOURCE_DATE_EPOCH clamps members' times and is the image's time.
    let out = pack_tar_with(
        "-",
        &image,
        &[],
        &[("SOURCE_DATE_EPOCH", "1000000000")],
        Some(&archive),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = Archive::open(&image).unwrap();
    assert_eq!(a.superblock().mkfs_time, 1_000_000_000);
    assert_eq!(attr_of(&a, &format!("/{long}")).mtime, 1_000_000_000);
}

fn attr_of(a: &Archive, path: &str) -> sqfs::Attr {
    a.attr(&a.lookup_path(path).unwrap()).unwrap()
}

#[test]
fn hostile_archives_fail_in_one_line_and_leave_the_old_image() {
    let scratch = Scratch::new("sqfs-pack-tar", "hostile");
    let image = scratch.path("image.sqfs");
    let fine = Tar::default().file("ok", b"fine").finish();
    let mut truncated = Tar::default();
    truncated.file("big", &vec![b'b'; 100_000]);
    let truncated = truncated.bytes[..50_000].to_vec();
    let mut huge = Header::new(b'0', "huge");
    huge.size = 1 << 62;
    let mut huge_tar = Tar::default();
    huge_tar.member(&huge, &[b'h'; 1024], &[]);
    let huge_tar = huge_tar.bytes;
    // A PAX header that says it holds 1 GiB, and keeps going: never read whole.
    let mut endless = Header::new(b'x', "PaxHeaders/endless");
    endless.size = 1 << 30;
    let mut endless_tar = raw_tar::header_block(&endless).to_vec();
    endless_tar.extend(std::iter::repeat_n(b'9', 24 << 20));
    let mut long_name = Header::new(b'L', "././@LongLink");
    long_name.size = 1 << 30;
    let mut long_name_tar = raw_tar::header_block(&long_name).to_vec();
    long_name_tar.extend(std::iter::repeat_n(b'n', 24 << 20));
    let mut bad_sum = fine.clone();
    bad_sum[0] ^= 1;
    let mut bad_pax = Tar::default();
    bad_pax.member(&Header::new(b'0', "x"), &[], &[("path", b"a")]);
    let mut bad_pax = bad_pax.finish();
    let at = bad_pax.windows(6).position(|w| w == b"path=a").unwrap();
    bad_pax[at - 2] = b'8'; // "9 path=a\n" said to be 8 bytes long
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            Tar::default()
                .file("ok", b"x")
                .file("../evil", b"x")
                .finish(),
            "../evil: a `..` in its name",
        ),
        (
            "traversal inside",
            Tar::default().file("a/../../etc/passwd", b"x").finish(),
            "a `..` in its name",
        ),
        (
            "absolute traversal",
            Tar::default().file("/../x", b"x").finish(),
            "a `..` in its name",
        ),
        (
            "link to a missing target",
            Tar::default().link(b'1', "l", "missing").finish(),
            "l: hard link to missing, which is not earlier in the archive",
        ),
        (
            "link outside",
            Tar::default()
                .file("ok", b"x")
                .link(b'1', "l", "../ok")
                .finish(),
            "l: hard link target: a `..` in its name",
        ),
        (
            "link to a directory",
            Tar::default().dir("d", 0o755).link(b'1', "l", "d").finish(),
            "hard link to d, a directory",
        ),
        (
            "a file as a parent",
            Tar::default().file("f", b"x").file("f/g", b"y").finish(),
            "f/g: f is not a directory in the archive",
        ),
        (
            "truncated",
            truncated,
            "big: the archive ends inside it (49488 of 100000 bytes)",
        ),
        (
            "huge size field",
            huge_tar,
            "huge: the archive ends inside it (1024 of 4611686018427387904 bytes)",
        ),
        ("endless PAX header", endless_tar, "hold more than 16 MiB"),
        ("endless long name", long_name_tar, "hold more than 16 MiB"),
        (
            "bad checksum",
            bad_sum,
            "not a valid tar archive at its start",
        ),
        ("malformed PAX record", bad_pax, "x: a malformed PAX record"),
        (
            "not a tar",
            b"just some text, long enough to be read as a header".repeat(20),
            "not a valid tar archive",
        ),
        ("bzip2", b"BZh91AY&SY".repeat(100), "bzip2-compressed"),
        (
            "a name past 256 bytes",
            Tar::default()
                .member(
                    &Header::new(b'0', "x"),
                    &[],
                    &[("path", "n".repeat(300).as_bytes())],
                )
                .finish(),
            "a name component of 300 bytes",
        ),
        (
            "a 4096-byte symlink target",
            {
                let mut h = Header::new(b'2', "s");
                h.link = b"t".to_vec();
                let target = "t".repeat(4096);
                Tar::default()
                    .member(&h, &[], &[("linkpath", target.as_bytes())])
                    .finish()
            },
            "s: a symlink target of 4096 bytes (Linux's limit is 4095)",
        ),
        (
            "a NUL in a name",
            Tar::default()
                .member(&Header::new(b'0', "x"), &[], &[("path", b"a\0b")])
                .finish(),
            "a NUL byte in its name",
        ),
        (
            "a hostile name in a message",
            Tar::default()
                .file("evil\nsqfs: error: forged/../x", b"x")
                .finish(),
            "evil\\nsqfs: error: forged/../x: a `..`",
        ),
    ];
    std::fs::write(&image, b"the old image").unwrap();
    for (what, bytes, expected) in &cases {
        for from_file in [false, true] {
            let out = if from_file {
                let file = scratch.path("input.tar");
                std::fs::write(&file, bytes).unwrap();
                pack_tar_with(file.to_str().unwrap(), &image, &[], &[], None)
            } else {
                pack_stdin(bytes, &image, &[])
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what}: succeeded");
            assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
            let source = if from_file {
                "input.tar"
            } else {
                "standard input"
            };
            assert!(
                stderr.starts_with("sqfs: error: ")
                    && stderr.contains(source)
                    && stderr.contains(expected),
                "{what}: expected {expected:?} in {stderr:?}"
            );
            assert_eq!(std::fs::read(&image).unwrap(), b"the old image", "{what}");
            let mut left = files_in(&scratch.0);
            left.retain(|f| f != "input.tar");
            assert_eq!(left, ["image.sqfs"], "{what}: a temporary was left");
        }
    }
    // And the fine archive goes in.
    succeeded(&pack_stdin(&fine, &image, &[]), "fine");
    assert_eq!(read_file(&Archive::open(&image).unwrap(), "/ok"), b"fine");
}

// The `tar` fuzz target's body: its seeds, and every input it once found, are replayed
// through it here.
#[path = "../fuzz/fuzz_targets/tar_check.rs"]
mod tar_check;

/// A PAX sparse member (formats 0.0, 0.1, 1.0 as `version` says) of `size` bytes whose
/// `chunks` hold `data`, named `name`.
fn pax_sparse(
    t: &mut Tar,
    version: &str,
    name: &str,
    size: u64,
    chunks: &[(u64, u64)],
    data: &[u8],
) {
    let size_text = size.to_string();
    let mut records: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut body = Vec::new();
    let mut h = Header::new(b'0', name);
    match version {
        "1.0" => {
            records.push(("GNU.sparse.major", b"1".to_vec()));
            records.push(("GNU.sparse.minor", b"0".to_vec()));
            records.push(("GNU.sparse.name", name.as_bytes().to_vec()));
            records.push(("GNU.sparse.realsize", size_text.into_bytes()));
            h.name = format!("./GNUSparseFile.0/{name}").into_bytes();
            let mut map = format!("{}\n", chunks.len());
            for (o, l) in chunks {
                map += &format!("{o}\n{l}\n");
            }
            body = map.into_bytes();
            body.resize(body.len().next_multiple_of(512), 0);
        }
        "0.1" => {
            records.push(("GNU.sparse.size", size_text.into_bytes()));
            let map: Vec<String> = chunks.iter().map(|(o, l)| format!("{o},{l}")).collect();
            records.push(("GNU.sparse.map", map.join(",").into_bytes()));
        }
        _ => {
            records.push(("GNU.sparse.size", size_text.into_bytes()));
            for (o, l) in chunks {
                records.push(("GNU.sparse.offset", o.to_string().into_bytes()));
                records.push(("GNU.sparse.numbytes", l.to_string().into_bytes()));
            }
        }
    }
    body.extend_from_slice(data);
    h.size = body.len() as u64;
    let pax: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (*k, &v[..])).collect();
    t.member(&h, &body, &pax);
}

/// A member of `kind` with its header fields set by `set`.
fn member_with(t: &mut Tar, kind: u8, name: &str, set: impl FnOnce(&mut Header), data: &[u8]) {
    let mut h = Header::new(kind, name);
    h.size = data.len() as u64;
    set(&mut h);
    t.member(&h, data, &[]);
}

/// The seeds of the `tar` target: (name, flags byte + stream).
fn tar_seeds() -> Vec<(String, Vec<u8>)> {
    use tar_check::{Wrap, ALL_ROOT, EXCLUDE_X, NO_XATTRS};
    let mut every = Tar::default();
    every
        .dir("d", 0o750)
        .file("d/f", b"hello\n")
        .file(
            "big",
            &(0..20_000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .link(b'2', "s", "d/f")
        .link(b'1', "h", "d/f")
        .file("implied/a/b", b"below implied directories");
    member_with(&mut every, b'3', "c", |h| (h.major, h.minor) = (1, 3), &[]);
    member_with(&mut every, b'4', "b", |h| (h.major, h.minor) = (8, 0), &[]);
    member_with(&mut every, b'6', "p", |_| {}, &[]);
    member_with(&mut every, b'7', "contiguous", |_| {}, b"contiguous file");
    member_with(&mut every, b'0', "v7dir/", |_| {}, &[]);
    member_with(&mut every, b'D', "dumpdir", |_| {}, b"Yname\0\0");
    member_with(&mut every, b'V', "volume label", |_| {}, &[]);
    let global = raw_tar::pax_records(&[("comment", b"global")]);
    member_with(&mut every, b'g', "pax_global_header", |_| {}, &global);
    let every = every.finish();

    let mut pax = Tar::default();
    let long_path = format!("{}/{}/file", "p".repeat(200), "q".repeat(250));
    let sized = |name: &str, size: usize| {
        let mut h = Header::new(b'0', name);
        h.size = size as u64;
        h
    };
    pax.member(
        &sized("short", 9),
        b"long path",
        &[("path", long_path.as_bytes())],
    );
    let mut link = Header::new(b'2', "link");
    link.link = b"x".to_vec();
    pax.member(&link, &[], &[("linkpath", "t".repeat(300).as_bytes())]);
    pax.member(
        &Header::new(b'0', "fields"),
        &[],
        &[
            ("mtime", b"-1.5"),
            ("uid", b"4294967294"),
            ("gid", b"65536"),
            ("SCHILY.xattr.user.a", b"value\nwith a newline"),
            ("SCHILY.xattr.trusted.b", b"t"),
            ("SCHILY.xattr.security.c", b"s"),
            ("SCHILY.xattr.system.posix_acl_access", b"not stored"),
            ("SCHILY.xattr.user.a", b"the later value"),
        ],
    );
    pax.member(&sized("sized", 5), b"12345", &[("size", b"5")]);
    let pax = pax.finish();

    let mut gnu = Tar::default();
    gnu.gnu_long(b'L', format!("{}/long-name", "g".repeat(150)).as_bytes())
        .file("cut", b"gnu long name");
    gnu.gnu_long(b'K', "k".repeat(200).as_bytes())
        .link(b'2', "long-link", "cut");
    gnu.gnu_long(b'L', b"linked-by-long-name")
        .gnu_long(b'K', format!("{}/long-name", "g".repeat(150)).as_bytes())
        .link(b'1', "cut2", "cut");
    let gnu = gnu.finish();

    let chunks = [(0, 3), (4096, 2), (9000, 5)];
    let mut sparse = Vec::new();
    for version in ["0.0", "0.1", "1.0"] {
        let mut t = Tar::default();
        pax_sparse(
            &mut t,
            version,
            "dir/sparse",
            10_000,
            &chunks,
            b"abcXYvwxyz",
        );
        pax_sparse(&mut t, version, "holes-only", 50_000, &[], b"");
        sparse.push((format!("sparse-{version}"), t.finish()));
    }
    let mut t = Tar::default();
    // The tar crate takes GNU tar's layout: every chunk but the last a whole number of
    // 512-byte blocks.
    let many: Vec<(u64, u64)> = (0..30).map(|i| (i * 1024, 512)).collect();
    t.gnu_sparse(
        "old-gnu",
        10_000,
        &[(0, 512), (4096, 512), (9000, 5), (10_000, 0)],
        &[b'o'; 1029],
    )
    .gnu_sparse("old-gnu-extended", 30_208, &many, &[b's'; 30 * 512]);
    sparse.push(("sparse-old-gnu".into(), t.finish()));

    let mut replace = Tar::default();
    replace
        .file("a", b"first")
        .file("./a", b"second")
        .dir("d", 0o755)
        .file("d/x", b"under d")
        .file("d/shared", b"shared")
        .link(b'1', "outside", "d/shared")
        .file("d", b"a file now")
        .file("f", b"a file")
        .dir("f", 0o700)
        .link(b'1', "h", "a")
        .file("a", b"third")
        .dir("keep", 0o700)
        .dir("keep/", 0o750)
        .link(b'2', "s", "nowhere")
        .link(b'1', "s", "a")
        .link(b'1', "s", "a");
    let replace = replace.finish();

    let mut excluded = Tar::default();
    excluded
        .file("x", b"excluded")
        .file("d/x", b"excluded too")
        .link(b'1', "to-x", "x")
        .link(b'1', "d/y", "d/x")
        .file("kept", b"kept");
    let excluded = excluded.finish();

    let with = |flags: u8, tar: &[u8]| [&[flags][..], tar].concat();
    let mut seeds = vec![
        ("empty".to_string(), vec![0]),
        ("end-only".into(), with(0, &Tar::default().finish())),
        ("every-type".into(), with(0, &every)),
        ("every-type-gzip".into(), with(Wrap::Gzip.flags(), &every)),
        ("every-type-zstd".into(), with(Wrap::Zstd.flags(), &every)),
        ("every-type-xz".into(), with(Wrap::Xz.flags(), &every)),
        (
            "every-type-root-no-xattrs".into(),
            with(ALL_ROOT | NO_XATTRS, &every),
        ),
        ("pax".into(), with(0, &pax)),
        ("gnu-long".into(), with(0, &gnu)),
        ("replace".into(), with(0, &replace)),
        ("excluded".into(), with(EXCLUDE_X, &excluded)),
    ];
    for (name, tar) in sparse {
        seeds.push((name, with(0, &tar)));
    }
    seeds
}

/// Replays the `tar` fuzz target's seeds and findings through its own body (which panics
/// on a finding). With `SQFS_FUZZ_SEEDS=DIR` the seeds are also written to `DIR/tar/`,
/// where `fuzz/ci.sh` starts the fuzzer from.
#[test]
fn tar_fuzz_seeds_and_findings_pack_or_fail_in_one_line() {
    let seeds = tar_seeds();
    e2e_tests::fuzzing::write_seeds("tar", &seeds);
    let scratch = tar_check::Scratch::new("replay");
    for (name, data) in &seeds {
        // The seeds must reach the code they are for: every one packs.
        let walked = scratch
            .pack(data)
            .unwrap_or_else(|e| panic!("seed {name}: {e}"));
        let has = |path: &str, kind: FileType, size: u64| {
            assert_eq!(walked.get(path), Some((kind, size)), "seed {name}: {path}");
        };
        match name.as_str() {
            n if n.starts_with("every-type") => {
                has("/d/f", FileType::File, 6);
                has("/h", FileType::File, 6);
                has("/big", FileType::File, 20_000);
                has("/s", FileType::Symlink, 3);
                has("/c", FileType::CharDevice, 0);
                has("/b", FileType::BlockDevice, 0);
                has("/p", FileType::Fifo, 0);
                has("/contiguous", FileType::File, 15);
                has("/v7dir", FileType::Directory, 3);
                has("/dumpdir", FileType::Directory, 3);
                has("/implied/a/b", FileType::File, 25);
                assert_eq!(walked.get("/volume label"), None, "{name}");
                assert_eq!(walked.get("/pax_global_header"), None, "{name}");
            }
            "pax" => {
                let long = format!("/{}/{}/file", "p".repeat(200), "q".repeat(250));
                has(&long, FileType::File, 9);
                has("/link", FileType::Symlink, 300);
                has("/sized", FileType::File, 5);
            }
            "gnu-long" => {
                has(
                    &format!("/{}/long-name", "g".repeat(150)),
                    FileType::File,
                    13,
                );
                has("/long-link", FileType::Symlink, 200);
                has("/linked-by-long-name", FileType::File, 13);
            }
            "replace" => {
                let paths: Vec<&[u8]> = walked.entries.iter().map(|e| &e.0[..]).collect();
                assert_eq!(paths.len(), 8, "{name}: {paths:?}");
                has("/d", FileType::File, 10);
                has("/f", FileType::Directory, 3);
                has("/h", FileType::File, 6);
                has("/a", FileType::File, 5);
            }
            "excluded" => {
                has("/kept", FileType::File, 4);
                for gone in ["/x", "/to-x", "/d/x", "/d/y"] {
                    assert_eq!(walked.get(gone), None, "{name}: {gone}");
                }
            }
            n if n.starts_with("sparse-") => {
                if n == "sparse-old-gnu" {
                    has("/old-gnu", FileType::File, 10_000);
                    has("/old-gnu-extended", FileType::File, 30_208);
                } else {
                    has("/dir/sparse", FileType::File, 10_000);
                    has("/holes-only", FileType::File, 50_000);
                }
            }
            _ => {}
        }
    }
    for (name, data) in &e2e_tests::fuzzing::regressions("tar") {
        let result = scratch.pack(data);
        eprintln!("regression {name}: {:?}", result.map(|w| w.entries.len()));
    }
}

/// `pack_stdin` must fail with one line holding `expected`, and leave no image.
fn refused(scratch: &Scratch, what: &str, bytes: &[u8], expected: &str) {
    let image = scratch.path("refused.sqfs");
    let out = pack_stdin(bytes, &image, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{what}: {expected:?} not in {stderr:?}"
    );
    assert!(!image.exists(), "{what}: an image");
}

#[test]
fn sparse_members_cannot_ask_for_unbounded_holes() {
    let scratch = Scratch::new("sqfs-pack-tar", "holes");
    // 10^18 bytes of holes in a few hundred bytes: before the bound, packing read an
    // exabyte of zeros (64 GiB took 23 s).
    let mut t = Tar::default();
    pax_sparse(
        &mut t,
        "0.1",
        "exabyte",
        1_000_000_000_000_000_000,
        &[],
        b"",
    );
    refused(
        &scratch,
        "PAX 0.1",
        &t.finish(),
        "exabyte: a sparse file whose holes",
    );
    let mut t = Tar::default();
    pax_sparse(&mut t, "1.0", "tebibyte", 1 << 40, &[(0, 5)], b"abcde");
    refused(
        &scratch,
        "PAX 1.0",
        &t.finish(),
        "tebibyte: a sparse file whose holes",
    );
    // Old GNU sparse members (expanded by the tar crate): 2^62 bytes of holes.
    let mut t = Tar::default();
    t.gnu_sparse("old", 1 << 62, &[(1 << 62, 0)], b"");
    refused(
        &scratch,
        "old GNU",
        &t.finish(),
        "old: a sparse file whose holes",
    );
    // Two members, each under the bound alone, together over it.
    let mut t = Tar::default();
    pax_sparse(&mut t, "0.1", "first", 2 << 30, &[], b"");
    pax_sparse(&mut t, "0.1", "second", 7 << 30, &[], b"");
    refused(
        &scratch,
        "two",
        &t.finish(),
        "second: a sparse file whose holes",
    );
    // What the bound lets through: 8 GiB of holes alone (the corpus has a sparse file of
    // 4.5 GiB), more after data.
    let mut t = Tar::default();
    let base = (8 << 30) - (1 << 20);
    pax_sparse(&mut t, "0.1", "base", base, &[(0, 4)], b"data");
    t.file("data", &vec![7; 1 << 20]);
    pax_sparse(&mut t, "0.0", "more", 1 << 29, &[], b"");
    let image = scratch.path("sparse.sqfs");
    succeeded(&pack_stdin(&t.finish(), &image, &[]), "within the bound");
    let a = Archive::open(&image).unwrap();
    assert_eq!(attr_of(&a, "/base").size, base);
    assert_eq!(attr_of(&a, "/more").size, 1 << 29);
}

#[test]
fn symlink_targets_with_a_nul_are_refused() {
    let scratch = Scratch::new("sqfs-pack-tar", "symlink-nul");
    let mut h = Header::new(b'2', "s");
    h.link = b"x".to_vec();
    let mut t = Tar::default();
    t.member(&h, &[], &[("linkpath", b"/etc\0/passwd")]);
    refused(
        &scratch,
        "NUL",
        &t.finish(),
        "s: a NUL byte in its symlink target",
    );
}

#[test]
fn extended_attributes_past_what_linux_lists_are_left_out_with_one_warning() {
    let scratch = Scratch::new("sqfs-pack-tar", "xattr-list");
    // 20,000 names of 11 bytes: 240,000 bytes listed, where Linux lists 64 KiB at most
    // (XATTR_LIST_MAX). Before, the image held them all and its reader refused the list
    // as corrupt.
    let names: Vec<String> = (0..20_000).map(|i| format!("user.{i:06}")).collect();
    let records: Vec<(String, &[u8])> = names
        .iter()
        .map(|n| (format!("SCHILY.xattr.{n}"), &b"v"[..]))
        .collect();
    let pax: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut t = Tar::default();
    t.member(&Header::new(b'0', "f"), &[], &pax);
    let image = scratch.path("image.sqfs");
    let out = pack_stdin(&t.finish(), &image, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("f: extended attribute user.005461 and 14538 more not stored"),
        "{stderr}"
    );
    let a = Archive::open(&image).unwrap();
    let xattrs = a.xattrs(&a.lookup_path("/f").unwrap()).unwrap();
    assert_eq!(
        xattrs.len(),
        5461,
        "as many 12-byte names as fit in 65536 bytes"
    );
    assert_eq!(xattrs.last().unwrap().name, b"user.005460");
}
