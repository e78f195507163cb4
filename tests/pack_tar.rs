//! `sqfs pack --tar`, end to end: GNU tar's archives of the corpus tree (PAX with xattrs
//! and sparse maps, and GNU's own format with long names and old sparse members) mount in
//! the kernel as the tree packed from its directory; standard input and compressed
//! archives give the same bytes; later members replace earlier ones as extraction would;
//! the options apply; hostile archives fail in one line and leave no image.

#[path = "raw_tar.rs"]
mod raw_tar;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e_tests::corpus::{images, repo_root};
use e2e_tests::skip::{needs, Need};
use e2e_tests::snapshot::{compare, from_archive, from_dir, Ignore, Node};
use e2e_tests::sys::{built_binary, LoopMount};
use raw_tar::{Header, Tar};
use sqfs::{Archive, FileType};

/// A directory of the test's own, removed with what it holds.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sqfs-pack-tar-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
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

fn sorted(mut nodes: Vec<Node>) -> Vec<Node> {
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    for n in &mut nodes {
        n.xattrs.sort();
    }
    nodes
}

/// The sets of paths that are one inode (hard links), in path order.
fn link_groups(nodes: &[Node]) -> Vec<Vec<Vec<u8>>> {
    let mut by_ino: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.mode & 0o170000 != 0o040000) {
        by_ino.entry(n.ino).or_default().push(n.path.clone());
    }
    let mut groups: Vec<Vec<Vec<u8>>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
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

fn same_tree(what: &str, expected: &[Node], actual: &[Node]) {
    let ignore = Ignore {
        ino: true,
        dir_size: true,
        nlink: false,
    };
    if let Err(diff) = compare(expected, actual, ignore) {
        panic!("{what}:\n{diff}");
    }
    assert_eq!(
        link_groups(expected),
        link_groups(actual),
        "{what}: hard links"
    );
    assert!(!link_groups(expected).is_empty(), "the tree has hard links");
}

#[test]
fn gnu_tars_of_the_corpus_tree_mount_as_the_tree_packed_from_its_directory() {
    if !needs(&[Need::Root, Need::Corpus]) {
        return;
    }
    let _ = images();
    let tree = repo_root().join("testdata/out/tree");
    let scratch = Scratch::new("corpus");
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
fn small_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a"), b"a file\n").unwrap();
    std::fs::write(root.join("sub/b"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("sub/deeper/c"), b"c").unwrap();
    std::fs::hard_link(root.join("a"), root.join("sub/a-link")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    std::fs::write(root.join(format!("long-{}", "n".repeat(150))), b"long").unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"middle", 2 << 20).unwrap();
}

#[test]
fn standard_input_and_compressed_archives_give_the_same_bytes() {
    let scratch = Scratch::new("stdin");
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
    let scratch = Scratch::new("replace");
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
    let scratch = Scratch::new("fields");
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

/// The files in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn hostile_archives_fail_in_one_line_and_leave_the_old_image() {
    let scratch = Scratch::new("hostile");
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
