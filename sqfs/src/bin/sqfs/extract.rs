//! `sqfs extract`: the tree written out like `unsquashfs -d DIR` does it. One thread walks
//! and creates the skeleton (directories, links, special files, regular files at their
//! length); a pool of workers writes the contents in chunks of blocks; then file attributes,
//! then directory attributes deepest first, so a mode-000 directory does not block its
//! children.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use sqfs::{Archive, FileData, FileType, Inode};

use crate::sys;
use crate::walk::{lookup, walk};

/// An inode written out at `path`, whose attributes go on once its contents are in.
struct Job {
    path: PathBuf,
    inode: Inode,
}

/// Blocks `first..end` of regular file `file` (plus its fragment tail when `tail`): the
/// unit of parallel work, so one large file keeps every core busy too.
struct Chunk {
    file: usize,
    first: usize,
    end: usize,
    tail: bool,
}

/// Blocks per chunk: 32 blocks of 128 KiB are 4 MiB of output.
const CHUNK_BLOCKS: usize = 32;

pub fn run(
    archive: &Archive,
    from: &str,
    dir: &Path,
    processors: Option<usize>,
) -> Result<(), String> {
    let start = lookup(archive, from)?;
    prepare_destination(dir)?;
    let root = is_root_privileged();
    let mut files: Vec<(Job, FileData)> = Vec::new();
    let mut later = Vec::new(); // directories and non-file inodes, for attributes at the end
    let mut links: HashMap<u32, PathBuf> = HashMap::new();
    let mut skipped_devices = 0usize;
    let mut total_bytes = 0u64;
    let start_is_dir = start.is_dir();
    walk(archive, start, &mut |rel, inode| {
        let path = if rel.is_empty() {
            if start_is_dir {
                dir.to_path_buf()
            } else {
                dir.join(from.rsplit('/').find(|s| !s.is_empty()).unwrap_or("file"))
            }
        } else {
            dir.join(OsStr::from_bytes(rel))
        };
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        // Any non-directory inode met again is a hard link to where it was first written
        // (symlinks, fifos and devices can be hard-linked too).
        if !inode.is_dir() {
            if let Some(first) = links.get(&inode.number) {
                return fs::hard_link(first, &path).map_err(fail);
            }
        }
        match inode.kind {
            FileType::Directory => {
                if !rel.is_empty() {
                    fs::create_dir(&path).map_err(fail)?;
                }
                later.push(Job {
                    path,
                    inode: inode.clone(),
                });
            }
            FileType::File => {
                let data = archive
                    .file_data(inode)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                // The length first: holes are never written, and stay holes.
                File::create(&path)
                    .and_then(|f| f.set_len(data.size()))
                    .map_err(fail)?;
                links.insert(inode.number, path.clone());
                total_bytes += inode.size();
                files.push((
                    Job {
                        path,
                        inode: inode.clone(),
                    },
                    data,
                ));
            }
            FileType::Symlink => {
                let target = archive
                    .read_link(inode)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                symlink(OsStr::from_bytes(target), &path).map_err(fail)?;
                links.insert(inode.number, path.clone());
                later.push(Job {
                    path,
                    inode: inode.clone(),
                });
            }
            FileType::BlockDevice | FileType::CharDevice | FileType::Fifo | FileType::Socket => {
                let is_device = matches!(inode.kind, FileType::BlockDevice | FileType::CharDevice);
                if is_device && !root {
                    skipped_devices += 1;
                    return Ok(());
                }
                sys::mknod(&path, inode.mode(), inode.rdev()).map_err(fail)?;
                links.insert(inode.number, path.clone());
                later.push(Job {
                    path,
                    inode: inode.clone(),
                });
            }
        }
        Ok(())
    })?;

    let progress = progress_bar(total_bytes);
    let threads = processors
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let queue = Mutex::new(chunks(&files).into_iter());
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let Some(chunk) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                        break;
                    };
                    let (job, data) = &files[chunk.file];
                    if let Err(e) = write_chunk(archive, job, data, &chunk, &progress, &mut buf) {
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    progress.finish_and_clear();
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    for (job, _) in &files {
        apply_attrs(archive, job, root)?;
    }
    // Parents were pushed before children: reversed, every directory comes after its contents.
    for job in later.iter().rev() {
        apply_attrs(archive, job, root)?;
    }
    if skipped_devices > 0 {
        eprintln!("sqfs: warning: {skipped_devices} device node(s) not created: that needs root");
    }
    Ok(())
}

fn is_root_privileged() -> bool {
    sys::is_root()
}

fn prepare_destination(dir: &Path) -> Result<(), String> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{}: destination exists and is not empty",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "[{bar:50}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}

fn chunks(files: &[(Job, FileData)]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (file, (_, data)) in files.iter().enumerate() {
        let blocks = data.block_count();
        let mut first = 0;
        loop {
            let end = (first + CHUNK_BLOCKS).min(blocks);
            let tail = end == blocks;
            out.push(Chunk {
                file,
                first,
                end,
                tail,
            });
            if tail {
                break;
            }
            first = end;
        }
    }
    out
}

/// Writes one chunk of a file's blocks, skipping sparse holes.
fn write_chunk(
    archive: &Archive,
    job: &Job,
    data: &FileData,
    chunk: &Chunk,
    progress: &ProgressBar,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let fail = |e: String| format!("{}: {e}", job.path.display());
    let out = fs::OpenOptions::new()
        .write(true)
        .open(&job.path)
        .map_err(|e| fail(e.to_string()))?;
    let bs = u64::from(archive.superblock().block_size);
    for i in chunk.first..chunk.end {
        // Each block is written once: decompress into this worker's buffer, not the cache.
        if let Some(n) = archive
            .data_block_into(data, i, buf)
            .map_err(|e| fail(e.to_string()))?
        {
            out.write_all_at(&buf[..n], i as u64 * bs)
                .map_err(|e| fail(e.to_string()))?;
        }
        progress.inc(bs.min(data.size() - i as u64 * bs));
    }
    let tail_at = data.block_count() as u64 * bs;
    if chunk.tail && tail_at < data.size() {
        let mut tail = vec![0u8; (data.size() - tail_at) as usize];
        let n = archive
            .read_data(data, tail_at, &mut tail)
            .map_err(|e| fail(e.to_string()))?;
        out.write_all_at(&tail[..n], tail_at)
            .map_err(|e| fail(e.to_string()))?;
        progress.inc(n as u64);
    }
    Ok(())
}

/// Owner (as root), mode, xattrs, then mtime last, since each of the others changes ctime
/// and chown clears setuid bits.
fn apply_attrs(archive: &Archive, job: &Job, root: bool) -> Result<(), String> {
    let path = &job.path;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let attr = archive
        .attr(&job.inode)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if root {
        sys::lchown(path, attr.uid, attr.gid).map_err(fail)?;
    }
    if job.inode.kind != FileType::Symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(attr.mode & 0o7777)).map_err(fail)?;
    }
    let xattrs = archive
        .xattrs(&job.inode)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for x in xattrs {
        match sys::lsetxattr(path, &x.name, &x.value) {
            Ok(()) => {}
            // Without root, trusted.* and security.* cannot be set: unsquashfs skips them too.
            Err(_) if !root && !x.name.starts_with(b"user.") => {}
            Err(e) => {
                return Err(format!(
                    "{}: xattr {}: {e}",
                    path.display(),
                    String::from_utf8_lossy(&x.name)
                ))
            }
        }
    }
    sys::set_mtime(path, attr.mtime).map_err(fail)
}
