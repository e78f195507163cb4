//! SIF images (Singularity/Apptainer) made with `siftool`, the format's reference
//! implementation, run directly by all three tools: `sqfs` (info, ls, cat, extract),
//! `squashfuse-rs` and `ch-run` take the SIF's primary system partition as the image and
//! nothing else; a SIF without a usable one, or with a damaged header, is refused in one
//! line by each.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use e2e_tests::container::{can_run_containers, test_image, Scratch};
use e2e_tests::corpus::images;
use e2e_tests::snapshot::{compare, from_archive, from_dir, Ignore};
use e2e_tests::sys::{built_binary, fuse_available, is_mounted, listing_walk, FuseMount};

/// Where each descriptor starts in a siftool-made SIF (siftool's fixed layout: a table of
/// 48 descriptors of 585 bytes at 4096).
fn descriptor(index: usize) -> usize {
    4096 + index * 585
}

/// Whether something the test needs is here; if not, a skip that CI turns into a failure.
fn have(what: &str, present: bool) -> bool {
    if !present {
        e2e_tests::skip::skip(&format!("{what} is missing (scripts/setup.sh installs it)"));
    }
    present
}

fn siftool_available() -> bool {
    have(
        "siftool (Debian package siftool; .ci/run installs it)",
        Command::new("siftool")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success()),
    )
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A data object for `siftool add`.
enum Obj<'a> {
    /// `--datatype N` (1 definition file, 2 environment, 3 labels, …).
    Data(u32, &'a Path),
    /// A partition: `--partfs` (1 SquashFS, 2 ext3, 4 raw, 5 encrypted SquashFS) and
    /// `--parttype` (1 system, 2 primary system, 3 data, 4 overlay).
    Part(&'a Path, u32, u32),
}

/// `siftool new` then one `siftool add` per object, in order.
fn make_sif(path: &Path, objects: &[Obj]) {
    let _ = std::fs::remove_file(path);
    run_ok(Command::new("siftool").arg("new").arg(path));
    for o in objects {
        let mut cmd = Command::new("siftool");
        cmd.arg("add").arg(path);
        match o {
            Obj::Data(t, file) => cmd.arg(file).args(["--datatype", &t.to_string()]),
            Obj::Part(file, fs, part) => cmd.arg(file).args([
                "--datatype",
                "4",
                "--partfs",
                &fs.to_string(),
                "--parttype",
                &part.to_string(),
                "--partarch",
                "2",
            ]),
        };
        run_ok(&mut cmd);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The files the SIFs are made of, made once: a definition file, labels, and two small
/// SquashFS images that must never be taken for the root (`decoy` lists one file,
/// `/decoy`).
struct Parts {
    dir: PathBuf,
    deffile: PathBuf,
    labels: PathBuf,
    decoy: PathBuf,
    small: PathBuf,
    text: PathBuf,
}

fn parts() -> &'static Parts {
    static PARTS: OnceLock<Parts> = OnceLock::new();
    PARTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sif-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let deffile = dir.join("image.def");
        std::fs::write(&deffile, "Bootstrap: scratch\n").unwrap();
        let labels = dir.join("labels.json");
        std::fs::write(&labels, "{\"org.label-schema.schema-version\": \"1.0\"}\n").unwrap();
        let text = dir.join("text");
        std::fs::write(&text, "not a filesystem\n".repeat(300)).unwrap();
        let squash = |name: &str, file: &str, content: &str| {
            let tree = dir.join(format!("{name}-tree"));
            std::fs::create_dir_all(&tree).unwrap();
            std::fs::write(tree.join(file), content).unwrap();
            let image = dir.join(format!("{name}.sqfs"));
            run_ok(Command::new("mksquashfs").arg(&tree).arg(&image).args([
                "-noappend",
                "-quiet",
                "-no-progress",
            ]));
            image
        };
        Parts {
            decoy: squash("decoy", "decoy", "not the root\n"),
            small: squash("small", "small", "the small root\n"),
            deffile,
            labels,
            text,
            dir,
        }
    })
}

/// `sqfs ARGS`: exit code, stdout (bytes), stderr.
fn sqfs(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(built_binary("sqfs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sqfs_ok(args: &[&str]) -> Vec<u8> {
    let (code, out, err) = sqfs(args);
    assert_eq!(code, 0, "sqfs {args:?}: {err}");
    out
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A test's own directory under the shared one, removed when the test ends.
struct Work {
    dir: PathBuf,
}

impl Work {
    fn new(name: &str) -> Self {
        let dir = parts().dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Work { dir }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The busybox image of the ch-run tests in a SIF in `dir`, after a definition file,
/// labels, an overlay and a system partition (both the decoy), and before a data partition
/// (decoy). The primary is descriptor 4, object 5.
fn busybox_sif(dir: &Path) -> PathBuf {
    let p = parts();
    let sif = dir.join("busybox.sif");
    make_sif(
        &sif,
        &[
            Obj::Data(1, &p.deffile),
            Obj::Data(3, &p.labels),
            Obj::Part(&p.decoy, 1, 4),
            Obj::Part(&p.decoy, 1, 1),
            Obj::Part(&test_image().sqfs, 1, 2),
            Obj::Part(&p.decoy, 1, 3),
        ],
    );
    sif
}

/// A small SIF to damage: definition file, overlay (decoy), primary (small), data (decoy).
/// The primary is descriptor 2.
fn small_sif(dir: &Path) -> PathBuf {
    let p = parts();
    let sif = dir.join("small.sif");
    make_sif(
        &sif,
        &[
            Obj::Data(1, &p.deffile),
            Obj::Part(&p.decoy, 1, 4),
            Obj::Part(&p.small, 1, 2),
            Obj::Part(&p.decoy, 1, 3),
        ],
    );
    sif
}

/// Little-endian i64 values to write into a SIF, by byte position.
type Patches = Vec<(usize, i64)>;

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn set_i64(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offset and size of the object in descriptor `index`.
fn object(sif: &[u8], index: usize) -> (i64, i64) {
    let d = descriptor(index);
    (i64_at(sif, d + 17), i64_at(sif, d + 25))
}

#[test]
fn sqfs_reads_the_primary_partition_and_nothing_else() {
    if !siftool_available() {
        return;
    }
    let w = Work::new("reads");
    let sif = &busybox_sif(&w.dir);
    let plain = &test_image().sqfs;
    // ls, cat, extract: as the plain image.
    assert_eq!(
        sqfs_ok(&["ls", "-lR", arg(sif)]),
        sqfs_ok(&["ls", "-lR", arg(plain)])
    );
    assert_eq!(
        sqfs_ok(&["cat", arg(sif), "/data/big"]),
        std::fs::read(test_image().tree.join("data/big")).unwrap()
    );
    let dir = &w.dir;
    sqfs_ok(&["extract", arg(sif), arg(&dir.join("sif"))]);
    sqfs_ok(&["extract", arg(plain), arg(&dir.join("plain"))]);
    let ignore = Ignore {
        ino: true,
        ..Ignore::default()
    };
    compare(
        &from_dir(&dir.join("plain")),
        &from_dir(&dir.join("sif")),
        ignore,
    )
    .unwrap();
    assert!(from_dir(&dir.join("sif")).len() > 30);
    // The library: the same tree, inode numbers and all.
    let opened = sqfs::Archive::open(sif).unwrap();
    let sif_tree = from_archive(&opened).unwrap();
    assert_eq!(
        sif_tree,
        from_archive(&sqfs::Archive::open(plain).unwrap()).unwrap()
    );
    assert_eq!(opened.sif().unwrap().primary().unwrap().id, 5);
    // --offset reads exactly where it says, SIF or not: here the overlay partition.
    let bytes = std::fs::read(sif).unwrap();
    let (overlay, _) = object(&bytes, 2);
    let listed = sqfs_ok(&["ls", "--offset", &overlay.to_string(), arg(sif)]);
    assert_eq!(String::from_utf8(listed).unwrap(), "decoy\n");
    let (primary, _) = object(&bytes, 4);
    assert_eq!(
        sqfs_ok(&[
            "cat",
            "--offset",
            &primary.to_string(),
            arg(sif),
            "/data/hello"
        ]),
        b"hello from the image\n"
    );
}

/// `sqfs info` of a SIF: `siftool header` and `siftool list` verbatim, which object the
/// SquashFS is, then the same superblock as the plain image's.
#[test]
fn info_shows_the_sif_as_siftool_does_then_the_superblock() {
    if !siftool_available() {
        return;
    }
    let w = Work::new("info");
    let sif = busybox_sif(&w.dir);
    // An Apptainer-style launch script, which siftool new leaves out.
    let mut bytes = std::fs::read(&sif).unwrap();
    bytes[..31].copy_from_slice(b"#!/usr/bin/env run-singularity\n");
    std::fs::write(&sif, &bytes).unwrap();
    let header = run_ok(Command::new("siftool").arg("header").arg(&sif));
    let list = run_ok(Command::new("siftool").arg("list").arg(&sif));
    assert!(header.starts_with("Launch Script:        #!/usr/bin/env run-singularity\n"));
    let (start, size) = object(&bytes, 4);
    let info = String::from_utf8(sqfs_ok(&["info", arg(&sif)])).unwrap();
    let expect = format!(
        "{header}{list}SquashFS below: primary partition, object 5, bytes {start}-{}\n",
        start + size
    );
    assert!(
        info.starts_with(&expect),
        "expected:\n{expect}\ngot:\n{info}"
    );
    let plain = String::from_utf8(sqfs_ok(&["info", arg(&test_image().sqfs)])).unwrap();
    let superblock = |s: &str| -> Vec<String> {
        s.lines()
            .skip_while(|l| !l.starts_with("image:"))
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(superblock(&info), superblock(&plain));
    assert!(superblock(&plain).len() > 8);
}

/// The corpus images the SIF comparison uses: an xz one, a gensquashfs zstd one and one
/// whose length is not a multiple of 4 KiB (so its partition ends mid-block, with the data
/// partition after it in the same file).
const CORPUS: [&str; 3] = ["m-xz", "g-zstd", "m-nopad"];

fn corpus_sif(name: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let image = images()
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} not in the corpus"));
    assert_eq!(image.offset, 0);
    let p = parts();
    let sif = dir.join(format!("{name}.sif"));
    make_sif(
        &sif,
        &[
            Obj::Data(1, &p.deffile),
            Obj::Part(&p.decoy, 1, 4),
            Obj::Part(&image.path, 1, 2),
            Obj::Part(&p.decoy, 1, 3),
        ],
    );
    (image.path.clone(), sif)
}

#[test]
fn corpus_images_in_a_sif_read_as_the_plain_ones() {
    if !siftool_available() {
        return;
    }
    let fuse = have("/dev/fuse", fuse_available());
    let w = Work::new("corpus");
    for name in CORPUS {
        let (plain, sif) = corpus_sif(name, &w.dir);
        let bytes = std::fs::read(&sif).unwrap();
        let (start, size) = object(&bytes, 2);
        assert_eq!(size as u64, std::fs::metadata(&plain).unwrap().len());
        assert!(
            (start + size) < bytes.len() as i64,
            "{name}: the file goes on after the partition"
        );
        let a = from_archive(&sqfs::Archive::open(&plain).unwrap()).unwrap();
        let b = from_archive(&sqfs::Archive::open(&sif).unwrap()).unwrap();
        compare(&a, &b, Ignore::default()).unwrap_or_else(|d| panic!("{name}: {d}"));
        assert!(a.len() > 100, "{name}: {} nodes", a.len());
        assert_eq!(
            sqfs_ok(&["ls", "-lR", arg(&sif)]),
            sqfs_ok(&["ls", "-lR", arg(&plain)]),
            "{name}"
        );
        if fuse {
            let m_plain = FuseMount::new(&plain, &[]).unwrap();
            let m_sif = FuseMount::new(&sif, &[]).unwrap();
            assert!(
                listing_walk(&m_plain.dir) == listing_walk(&m_sif.dir),
                "{name}: readdir differs"
            );
            compare(
                &from_dir(&m_plain.dir),
                &from_dir(&m_sif.dir),
                Ignore::default(),
            )
            .unwrap_or_else(|d| panic!("{name} through squashfuse-rs: {d}"));
        }
        std::fs::remove_file(&sif).unwrap();
    }
}

/// How each tool refuses a bad image: exit status and its one line of stderr.
struct Refusals {
    sqfs: (i32, String),
    fuse: (i32, String),
    ch_run: Option<(i32, String)>,
}

fn one_line(stderr: &str, what: &str) -> String {
    assert_eq!(stderr.lines().count(), 1, "{what}: not one line: {stderr}");
    stderr.trim_end().to_string()
}

fn refusals(image: &Path, scratch: &Scratch) -> Refusals {
    let (code, _, err) = sqfs(&["ls", arg(image)]);
    let sqfs = (code, one_line(&err, "sqfs"));
    let mnt = parts().dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Command::new(built_binary("squashfuse-rs"))
        .arg(image)
        .arg(&mnt)
        .output()
        .unwrap();
    if is_mounted(&mnt) {
        let _ = Command::new("umount").arg(&mnt).status();
        panic!("squashfuse-rs mounted {}", image.display());
    }
    let fuse = (
        out.status.code().unwrap_or(-1),
        one_line(&String::from_utf8_lossy(&out.stderr), "squashfuse-rs"),
    );
    let ch_run = can_run_containers().then(|| {
        let out = scratch.run(&["-m", &scratch.mnt_arg(), arg(image), "--", "true"]);
        (out.code, one_line(&out.stderr, "ch-run"))
    });
    Refusals { sqfs, fuse, ch_run }
}

/// Every tool refuses `image` in one line that contains `why`.
fn assert_refused(image: &Path, why: &str, scratch: &Scratch) {
    let r = refusals(image, scratch);
    let shown = image.display();
    assert_eq!(r.sqfs.0, 1, "{}", r.sqfs.1);
    assert!(
        r.sqfs.1.starts_with(&format!("sqfs: error: {shown}: ")) && r.sqfs.1.contains(why),
        "expected {why:?}: {}",
        r.sqfs.1
    );
    assert_eq!(r.fuse.0, 1, "{}", r.fuse.1);
    assert!(
        r.fuse.1.starts_with(&format!("squashfuse-rs: {shown}: ")) && r.fuse.1.contains(why),
        "expected {why:?}: {}",
        r.fuse.1
    );
    if let Some((code, line)) = r.ch_run {
        assert_eq!(code, 31, "{line}");
        assert!(
            line.starts_with("ch-run[")
                && line.contains(&format!("]: error: can't open SquashFS: {shown}: "))
                && line.contains(why),
            "expected {why:?}: {line}"
        );
    }
}

#[test]
fn sifs_without_a_usable_primary_partition_are_refused() {
    if !siftool_available() {
        return;
    }
    let s = Scratch::new("sif-refused");
    let w = Work::new("refused");
    let p = parts();
    let cases: [(&str, Vec<Obj>, &str); 6] = [
        (
            "no-primary.sif",
            vec![
                Obj::Data(1, &p.deffile),
                Obj::Part(&p.decoy, 1, 4),
                Obj::Part(&p.decoy, 1, 3),
                Obj::Part(&p.small, 1, 1),
            ],
            "SIF image has no primary system partition",
        ),
        (
            "empty.sif",
            vec![],
            "SIF image has no primary system partition",
        ),
        (
            "ext3.sif",
            vec![Obj::Part(&p.decoy, 1, 4), Obj::Part(&p.small, 2, 2)],
            "SIF primary partition (object 2) is Ext3, not SquashFS",
        ),
        (
            "raw.sif",
            vec![Obj::Part(&p.small, 4, 2)],
            "SIF primary partition (object 1) is Raw, not SquashFS",
        ),
        (
            "encrypted.sif",
            vec![Obj::Data(1, &p.deffile), Obj::Part(&p.small, 5, 2)],
            "SIF primary partition (object 2) is encrypted (Encrypted squashfs): not supported",
        ),
        (
            "text.sif",
            vec![Obj::Part(&p.text, 1, 2)],
            "does not hold a SquashFS (bad magic)",
        ),
    ];
    for (name, objects, why) in cases {
        let sif = w.dir.join(name);
        make_sif(&sif, &objects);
        assert_refused(&sif, why, &s);
    }
    s.assert_clean();
}

#[test]
fn damaged_sif_headers_are_refused() {
    if !siftool_available() {
        return;
    }
    let s = Scratch::new("sif-damaged");
    let w = Work::new("damaged");
    let good = small_sif(&w.dir);
    let bytes = std::fs::read(&good).unwrap();
    let len = bytes.len() as i64;
    // The layout these patches assume: siftool's header, the primary in descriptor 2.
    assert_eq!((i64_at(&bytes, 88), i64_at(&bytes, 96)), (48, 4096));
    assert_eq!(
        &bytes[descriptor(2) + 201..descriptor(2) + 209],
        &[1, 0, 0, 0, 2, 0, 0, 0]
    );
    assert_eq!(sqfs_ok(&["ls", arg(&good)]), b"small\n");
    let (primary, size) = object(&bytes, 2);
    let (overlay, _) = object(&bytes, 1);
    let bytes_used = {
        let sb = &bytes[primary as usize..];
        i64_at(sb, 40)
    };
    let d = descriptor(2);
    let cases: Vec<(&str, Patches, String)> = vec![
        (
            "descriptor offset past the end",
            vec![(96, len)],
            "damaged SIF header: the descriptor table (28080 bytes at".into(),
        ),
        (
            "descriptor size past the end",
            vec![(104, len)],
            format!("ends past the end of the file ({len} bytes)"),
        ),
        (
            "descriptor count past the end",
            vec![(88, 4096), (80, 4096 - 3), (104, 4096 * 585)],
            "damaged SIF header: the descriptor table (2396160 bytes at 4096) ends past the end of the file".into(),
        ),
        (
            "descriptor count beyond any table",
            vec![(88, 1 << 40)],
            "damaged SIF header: 1099511627776 descriptors (at most 4096 are read)".into(),
        ),
        (
            "more descriptors than the table holds",
            vec![(88, 49)],
            "damaged SIF header: a descriptor table of 28080 bytes cannot hold 49 descriptors"
                .into(),
        ),
        (
            "object size past the end",
            vec![(d + 25, len - primary + 1)],
            format!("damaged SIF descriptor 2: object 3 ({} bytes at {primary}) ends past the end of the file", len - primary + 1),
        ),
        (
            "object offset past the end",
            vec![(d + 17, len)],
            "damaged SIF descriptor 2: object 3".into(),
        ),
        (
            "objects overlapping",
            vec![(d + 17, overlay + 512)],
            "damaged SIF: objects 2 and 3 overlap".into(),
        ),
        (
            "object in the descriptor table",
            vec![(d + 17, 4096)],
            "starts before the data section".into(),
        ),
        (
            "partition smaller than its SquashFS",
            vec![(d + 25, bytes_used - 1)],
            format!(
                "SIF primary partition (object 3) holds {} bytes but its SquashFS claims {bytes_used}",
                bytes_used - 1
            ),
        ),
    ];
    assert!(size >= bytes_used && bytes_used > 96);
    for (what, patches, why) in cases {
        let mut b = bytes.clone();
        for (at, value) in patches {
            set_i64(&mut b, at, value);
        }
        let bad = w.dir.join("damaged.sif");
        std::fs::write(&bad, &b).unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o644)).unwrap();
        eprintln!("case: {what}");
        assert_refused(&bad, &why, &s);
    }
    // A version that does not exist, and a header that is no longer a SIF's.
    let bad = w.dir.join("damaged.sif");
    let mut b = bytes.clone();
    b[42..45].copy_from_slice(b"02\0");
    std::fs::write(&bad, &b).unwrap();
    assert_refused(
        &bad,
        "unsupported SIF version \"02\" (only \"01\" exists)",
        &s,
    );
    b = bytes.clone();
    b[40] = b'X';
    std::fs::write(&bad, &b).unwrap();
    let r = refusals(&bad, &s);
    assert!(
        r.sqfs.1.ends_with("not a SquashFS image (bad magic)"),
        "{}",
        r.sqfs.1
    );
    assert!(
        r.fuse.1.ends_with("not a SquashFS image (bad magic)"),
        "{}",
        r.fuse.1
    );
    if let Some((code, line)) = r.ch_run {
        assert_eq!(code, 31);
        assert!(
            line.ends_with(&format!("unknown image type: {}", bad.display())),
            "{line}"
        );
    }
    s.assert_clean();
}

#[test]
fn ch_run_runs_a_sif_by_path_and_by_storage_name() {
    if !siftool_available() || !can_run_containers() {
        return;
    }
    let s = Scratch::new("sif-run");
    let w = Work::new("run");
    let sif = &busybox_sif(&w.dir);
    let mnt = s.mnt_arg();
    let out = s.run(&["-m", &mnt, arg(sif), "--", "cat", "/data/hello"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "hello from the image\n", ""),
        "{out:?}"
    );
    let out = s.run(&["-m", &mnt, arg(sif), "--", "sha256sum", "/data/big"]);
    assert!(out.stdout.starts_with(&test_image().big_sha256), "{out:?}");
    // The image's /ch/environment, as for a SquashFS image.
    let out = s.run(&[
        "-m",
        &mnt,
        "--set-env",
        arg(sif),
        "--",
        "sh",
        "-c",
        "echo $FROM_IMAGE",
    ]);
    assert_eq!(out.stdout, "image value\n", "{out:?}");
    // By name in the storage directory, as ch-image keeps images.
    let img = s.dir.join("storage/img");
    std::fs::create_dir_all(&img).unwrap();
    std::os::unix::fs::symlink(sif, img.join("apptainer%busybox+1.0")).unwrap();
    let storage = s.dir.join("storage");
    let out = s.run(&[
        "-m",
        &mnt,
        "-s",
        arg(&storage),
        "apptainer/busybox:1.0",
        "--",
        "cat",
        "/data/hello",
    ]);
    assert_eq!(out.stdout, "hello from the image\n", "{out:?}");
    s.assert_clean();
}

/// Apptainer keeps an image's environment in shell scripts under /.singularity.d/env and
/// its runscript at /.singularity.d/runscript, and its own entry points,
/// /.singularity.d/actions/exec and …/run, source the scripts and exec the command or the
/// runscript. Run through ch-run, they do the same: the README's recipe.
#[test]
fn apptainer_entry_points_run_under_ch_run() {
    if !siftool_available() || !can_run_containers() {
        return;
    }
    let s = Scratch::new("sif-apptainer");
    let w = Work::new("apptainer");
    let d = w.dir.join(".singularity.d");
    for sub in ["env", "actions"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    // Stand-ins with the behaviour of Apptainer's files (written here, not copied).
    let files = [
        (
            "env/90-environment.sh",
            "export GREETING='set by %environment'\n",
        ),
        ("env/99-later.sh", "GREETING=\"$GREETING, then 99\"\n"),
        (
            "actions/exec",
            "#!/bin/sh\nfor f in /.singularity.d/env/*.sh; do [ -f \"$f\" ] && . \"$f\"; done\nexec \"$@\"\n",
        ),
        (
            "actions/run",
            "#!/bin/sh\nfor f in /.singularity.d/env/*.sh; do [ -f \"$f\" ] && . \"$f\"; done\nexec /.singularity.d/runscript \"$@\"\n",
        ),
        ("runscript", "#!/bin/sh\necho \"runscript: $GREETING: $*\"\n"),
    ];
    for (name, text) in files {
        std::fs::write(d.join(name), text).unwrap();
        std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The busybox tree's entries plus /.singularity.d, all at the image's root.
    let tree = &test_image().tree;
    let mut sources: Vec<PathBuf> = std::fs::read_dir(tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sources.push(d.clone());
    let image = w.dir.join("apptainer.sqfs");
    run_ok(Command::new("mksquashfs").args(&sources).arg(&image).args([
        "-noappend",
        "-quiet",
        "-no-progress",
    ]));
    let sif = w.dir.join("apptainer.sif");
    make_sif(
        &sif,
        &[Obj::Data(1, &parts().deffile), Obj::Part(&image, 1, 2)],
    );
    let mnt = s.mnt_arg();
    let out = s.run(&[
        "-m",
        &mnt,
        arg(&sif),
        "--",
        "/.singularity.d/actions/run",
        "a",
        "b c",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "runscript: set by %environment, then 99: a b c\n"),
        "{out:?}"
    );
    let out = s.run(&[
        "-m",
        &mnt,
        arg(&sif),
        "--",
        "/.singularity.d/actions/exec",
        "sh",
        "-c",
        "echo \"$GREETING\"",
    ]);
    assert_eq!(out.stdout, "set by %environment, then 99\n", "{out:?}");
    s.assert_clean();
}
