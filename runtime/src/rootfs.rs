//! Building the container's root inside the new mount namespace, then moving into it.
//!
//! A small tmpfs goes on the mount point first; it holds the generated `/etc/passwd` and
//! `/etc/group` (so no file is ever written on the host) and the directory `root` on which
//! the image is mounted. Everything is bound into that root, then `pivot_root` makes it `/`
//! and the host's tree is detached. All of it exists only in this namespace: nothing is left
//! for anyone to clean up.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode};
use nix::unistd::{chdir, mkdir, pivot_root};

use crate::binds::{self, Bind, Refused, Unusable};
use crate::failure::{with_errno, Failure};
use crate::fuse_mount::{self, FuseServer};
use crate::image::Image;
use crate::plan::Plan;

/// Host files bound when both ends exist.
const OPTIONAL_FILES: [&str; 3] = ["/etc/hosts", "/etc/resolv.conf", "/etc/machine-id"];
/// Host trees every container gets.
const SYSTEM_TREES: [&str; 3] = ["/dev", "/proc", "/sys"];

fn runtime(what: impl std::fmt::Display, e: nix::errno::Errno) -> Failure {
    Failure::Runtime(with_errno(what, e))
}

fn tmpfs(target: &Path, options: &str) -> Result<(), Errno> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options),
    )
}

fn mount_tmpfs(target: &Path, options: &str) -> Result<(), Failure> {
    tmpfs(target, options)
        .map_err(|e| runtime(format!("can't mount tmpfs at {}", target.display()), e))
}

fn open_dir(path: &Path) -> Result<OwnedFd, Failure> {
    open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(|raw| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
    .map_err(|e| runtime(format!("can't open {}", path.display()), e))
}

/// Builds the root; returns the FUSE server for a SquashFS image (keep it alive). `shared`:
/// a detached copy of a shared server's mount of the image (see [`crate::share`]), attached
/// instead of mounting the image here.
pub fn build(plan: &Plan, shared: Option<OwnedFd>) -> Result<Option<FuseServer>, Failure> {
    let base = &plan.mountpoint;
    let size = plan
        .write_fake
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("12%");
    mount_tmpfs(base, &format!("mode=0755,size={size}"))?;
    let image_root = base.join("root");
    mkdir(&image_root, Mode::from_bits_truncate(0o755))
        .map_err(|e| runtime("can't make image mount point", e))?;

    let server = match (&plan.image, shared) {
        // A kernel or a seccomp filter may refuse `move_mount` (EPERM, ENOSYS) though it
        // let the server make the copy: then this container mounts the image itself.
        (Image::Squash { path, archive, .. }, shared) => {
            match shared.map(|mount| crate::mount_api::attach(&mount, &image_root)) {
                Some(Ok(())) => None,
                Some(Err(_)) | None => Some(fuse_mount::mount_and_serve(
                    archive.clone(),
                    path,
                    &image_root,
                )?),
            }
        }
        (Image::Directory { path, fd }, _) => {
            bind_directory_image(path, fd, &image_root, plan.write)?;
            None
        }
    };
    let newroot = match &plan.write_fake {
        Some(_) => overlay(base, &image_root)?,
        None => image_root,
    };
    let root = open_dir(&newroot)?;

    for tree in SYSTEM_TREES {
        let bind = Bind {
            src: tree.into(),
            dst: tree.into(),
        };
        binds::bind_user(&root, plan.image.path(), &bind)?;
    }
    for file in OPTIONAL_FILES {
        if Path::new(file).exists() {
            let file = Path::new(file);
            let _ = binds::mount_onto(&root, file, |target| binds::bind_onto(file, target));
        }
    }
    mount_tmp(plan, &root)?;
    if let Some((host_home, user)) = &plan.home {
        bind_home(&root, host_home, user)?;
    }
    if let Some(files) = &plan.passwd {
        for (name, text) in [("passwd", &files.passwd), ("group", &files.group)] {
            let staged = base.join(name);
            std::fs::write(&staged, text)
                .map_err(|e| Failure::Runtime(format!("can't write {name}: {e}")))?;
            let dst = PathBuf::from("/etc").join(name);
            binds::mount_onto(&root, &dst, |target| binds::bind_onto(&staged, target)).map_err(
                |e| match e {
                    Refused::Destination(_) => Failure::Runtime(format!(
                        "can't bind: destination not found: {}",
                        dst.display()
                    )),
                    Refused::Mount(e) => runtime(format!("can't bind {}", dst.display()), e),
                },
            )?;
        }
    }
    for bind in &plan.binds {
        binds::bind_user(&root, plan.image.path(), bind)?;
    }
    enter_root(&newroot)?;
    Ok(server)
}

/// A directory image is bound onto the mount point, read-only unless `-w`. It is the
/// directory opened and checked on the host (`checked`): a mount can only be bound from this
/// namespace's own tree, so the path is opened again here and must lead to the same one.
fn bind_directory_image(
    dir: &Path,
    checked: &OwnedFd,
    target: &Path,
    writable: bool,
) -> Result<(), Failure> {
    let fail = |e| runtime(format!("can't bind image {}", dir.display()), e);
    let here = open_dir(dir)?;
    let same = |fd: &OwnedFd| fstat(fd.as_raw_fd()).map(|st| (st.st_dev, st.st_ino));
    if same(&here).map_err(fail)? != same(checked).map_err(fail)? {
        return Err(Failure::Runtime(format!(
            "image replaced while starting: {}",
            dir.display()
        )));
    }
    mount(
        Some(&binds::fd_path(&here)),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(fail)?;
    if !writable {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// `-W`: overlayfs with the image as the lower layer and the tmpfs as the upper one.
fn overlay(base: &Path, lower: &Path) -> Result<PathBuf, Failure> {
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for dir in [&upper, &work, &merged] {
        mkdir(dir, Mode::from_bits_truncate(0o755))
            .map_err(|e| runtime(format!("can't mkdir {}", dir.display()), e))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| runtime("can't overlay a writeable tmpfs on the image", e))?;
    Ok(merged)
}

/// `/tmp`: the host's `$TMPDIR` (or `/tmp`), or a private tmpfs with `-t`.
fn mount_tmp(plan: &Plan, root: &OwnedFd) -> Result<(), Failure> {
    let tmp = Path::new("/tmp");
    if plan.private_tmp {
        binds::mount_onto(root, tmp, |target| tmpfs(target, "mode=1777")).map_err(|e| {
            Failure::Runtime(match e {
                Refused::Destination(Unusable::Missing) => {
                    "can't mount tmpfs at /tmp: No such file or directory".into()
                }
                Refused::Destination(_) => "can't bind: destination not found: /tmp".into(),
                Refused::Mount(_) => "can't mount tmpfs at /tmp".into(),
            })
        })
    } else {
        binds::mount_onto(root, tmp, |target| binds::bind_onto(&plan.host_tmp, target)).map_err(
            |e| match e {
                Refused::Destination(_) => {
                    Failure::Runtime("can't bind: destination not found: /tmp".into())
                }
                Refused::Mount(e) => {
                    runtime(format!("can't bind {} to /tmp", plan.host_tmp.display()), e)
                }
            },
        )
    }
}

/// `--home`: a tmpfs over the image's `/home` holding only `/home/$USER`, the host `$HOME`.
fn bind_home(root: &OwnedFd, host_home: &Path, user: &str) -> Result<(), Failure> {
    binds::mount_onto(root, Path::new("/home"), |target| {
        tmpfs(target, "mode=0755,size=4m")
    })
    .map_err(|e| match e {
        Refused::Destination(_) => Failure::Runtime("--home failed: no /home in image".into()),
        Refused::Mount(e) => runtime("can't mount tmpfs at /home", e),
    })?;
    let home = binds::resolve(root, Path::new("/home"))
        .map_err(|_| Failure::Runtime("--home failed: can't open /home".into()))?;
    let dir = binds::fd_path(&home).join(user);
    mkdir(&dir, Mode::from_bits_truncate(0o755))
        .map_err(|e| runtime(format!("--home failed: can't mkdir /home/{user}"), e))?;
    binds::bind_user(
        root,
        Path::new("/"),
        &Bind {
            src: host_home.to_path_buf(),
            dst: PathBuf::from(format!("/home/{user}")),
        },
    )
}

/// Makes `newroot` the root of this namespace and drops the host's tree out of it.
fn enter_root(newroot: &Path) -> Result<(), Failure> {
    chdir(newroot).map_err(|e| runtime(format!("can't chdir to {}", newroot.display()), e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    // the new root alone, with no directory needed in the (read-only) image.
    pivot_root(".", ".").map_err(|e| runtime("can't pivot_root(2)", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| runtime("can't detach old root", e))?;
    chdir("/").map_err(|e| runtime("can't chdir to new root", e))
}
