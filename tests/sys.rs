//! Root checks, loop mounts and xattr reads for the tests.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A read-only loop mount of an image by the kernel's squashfs driver; unmounted on drop.
pub struct LoopMount {
    pub dir: PathBuf,
}

impl LoopMount {
    pub fn new(image: &Path, offset: u64) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "sqfs-kmnt-{}-{}",
            std::process::id(),
            image.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "squashfs", "-o", &format!("loop,ro,offset={offset}")])
            .arg(image)
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mount {}: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(LoopMount { dir })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-d").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A tmpfs of the test's own (root only); unmounted on drop with what it holds.
///
/// Extraction tests write thousands of small files per image: on this project's machines
/// (ext4 on a virtual disk) each file creation costs ~0.3 ms of system time, which made
/// one corpus extraction take 4 s where tmpfs takes 0.1 s. tmpfs keeps what the tests
/// compare: owners, modes, times, devices, holes and xattrs of all three namespaces. Its
/// pages are memory: the corpus's one image without sparse blocks (`m-no-sparse`) makes
/// unsquashfs write its 4.5 GiB file out in full, hence the size limit well above that.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn new(name: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("sqfs-tmpfs-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16g,mode=0755", "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!(
                "mount tmpfs on {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `mksquashfs SRC IMAGE -no-progress -quiet -noappend ARGS...`, which must succeed.
pub fn mksquashfs(src: &Path, image: &Path, args: &[&str]) {
    let status = Command::new("mksquashfs")
        .arg(src)
        .arg(image)
        .args(["-no-progress", "-quiet", "-noappend"])
        .args(args)
        .status()
        .expect("mksquashfs (squashfs-tools) must be installed");
    assert!(status.success(), "mksquashfs {args:?}: {status}");
}

/// An image mksquashfs made of a tree a test wrote, in a scratch directory of its own that
/// goes with it.
pub struct ScratchImage {
    pub dir: PathBuf,
    pub image: PathBuf,
}

impl ScratchImage {
    /// The scratch directory for `name` (emptied), with `src/` holding `files` (paths
    /// relative to it, parents made) and `dirs`, made into `IMAGE.sqfs` with `args`.
    pub fn new(name: &str, dirs: &[&str], files: &[(String, Vec<u8>)], args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("sqfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        for d in dirs {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        for (path, bytes) in files {
            let path = src.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let image = dir.join("image.sqfs");
        mksquashfs(&src, &image, args);
        ScratchImage { dir, image }
    }
}

impl Drop for ScratchImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in paths")
}

/// Every xattr of `path` (not following symlinks), in the order the kernel lists them.
pub fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let p = cpath(path);
    let mut names = vec![0u8; 65536];
    // SAFETY: p is NUL-terminated; names has names.len() writable bytes.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cname = CString::new(name).unwrap();
            let mut value = vec![0u8; 65536];
            // SAFETY: both strings are NUL-terminated; value has value.len() writable bytes.
            let len = unsafe {
                libc::lgetxattr(
                    p.as_ptr(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            assert!(
                len >= 0,
                "lgetxattr {} {:?}",
                path.display(),
                String::from_utf8_lossy(name)
            );
            value.truncate(len as usize);
            (name.to_vec(), value)
        })
        .collect()
}

/// A binary cargo built in this workspace (target/<profile>/NAME), next to the test.
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        bin.exists(),
        "{} not built (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A `squashfuse-rs` mount (daemon mode: the command returns once the mount is ready);
/// unmounted on drop, and the daemon is waited for.
pub struct FuseMount {
    pub dir: PathBuf,
}

impl FuseMount {
    pub fn new(image: &Path, options: &[&str]) -> Result<Self, String> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sqfs-fmnt-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(built_binary("squashfuse-rs"));
        for o in options {
            cmd.args(["-o", o]);
        }
        let out = cmd
            .arg(image)
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(FuseMount { dir })
    }
}

/// Whether `dir` is a mount point now.
pub fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let target = dir.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*target))
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        // A release the kernel still has in flight (FUSE sends RELEASE asynchronously) can
        // make the first umount EBUSY on a loaded machine: try again for a while.
        for _ in 0..100 {
            let _ = Command::new("umount")
                .arg(&self.dir)
                .stderr(std::process::Stdio::null())
                .status();
            if !is_mounted(&self.dir) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Whether FUSE can be used here: /dev/fuse opens for reading and writing.
pub fn fuse_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
}

/// One entry as `readdir` gives it: its path under the walked root, `d_ino` and `d_type`.
pub type Listed = (Vec<u8>, u64, u8);

/// Every directory under `root` read the way `find` reads it: `readdir` alone, entering
/// what `d_type` calls a directory, never a `stat`. The entries come in readdir order,
/// "." and ".." included.
pub fn listing_walk(root: &Path) -> Vec<Listed> {
    let mut out = Vec::new();
    list_dir(root, b"", &mut out);
    out
}

fn list_dir(dir: &Path, rel: &[u8], out: &mut Vec<Listed>) {
    let c = cpath(dir);
    // SAFETY: a valid C string; the stream is closed below and entries are copied out
    // before the next readdir.
    let stream = unsafe { libc::opendir(c.as_ptr()) };
    assert!(!stream.is_null(), "opendir {}", dir.display());
    let mut subdirs = Vec::new();
    loop {
        // SAFETY: `stream` is open.
        let entry = unsafe { libc::readdir64(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name.
        let (name, ino, kind) = unsafe {
            let e = &*entry;
            let name = std::ffi::CStr::from_ptr(e.d_name.as_ptr())
                .to_bytes()
                .to_vec();
            (name, e.d_ino, e.d_type)
        };
        let mut path = rel.to_vec();
        path.push(b'/');
        path.extend_from_slice(&name);
        if kind == libc::DT_DIR && name != b"." && name != b".." {
            subdirs.push((name.clone(), path.clone()));
        }
        out.push((path, ino, kind));
    }
    // SAFETY: opened above, closed once.
    unsafe { libc::closedir(stream) };
    for (name, path) in subdirs {
        list_dir(&dir.join(std::ffi::OsStr::from_bytes(&name)), &path, out);
    }
}

/// How many of `file`'s pages are in the page cache, and how many it has.
pub fn resident_pages(file: &Path) -> (usize, usize) {
    let f = std::fs::File::open(file).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(4096);
    // SAFETY: a fresh read-only shared mapping of an open file, unmapped below; mincore
    // writes one byte per page into a vector of that many.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}", file.display());
        let mut vec = vec![0u8; pages];
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0, "mincore {}", file.display());
        (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
    }
}
