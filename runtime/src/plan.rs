//! Everything a run needs, worked out and checked on the host before any namespace exists,
//! so that every mistake a user can make is a one-line error up front.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{getegid, geteuid};

use crate::binds::{self, Bind};
use crate::cli::Options;
use crate::environ::Environment;
use crate::exec::Command;
use crate::failure::{fail, io_text, with_errno, Failure};
use crate::image::{self, Image};
use crate::storage::Storage;
use crate::trust::{self, Me, Unusable};
use crate::{bounded, passwd};

/// The image's own environment, for `--set-env` with no argument.
const IMAGE_ENVIRONMENT: &str = "/ch/environment";

pub struct Plan {
    pub image: Image,
    /// Where the container's tree is assembled (a tmpfs goes on it, in the namespace only).
    pub mountpoint: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub binds: Vec<Bind>,
    /// `--home`: the host `$HOME` and the user name it appears under.
    pub home: Option<(PathBuf, String)>,
    pub passwd: Option<passwd::Files>,
    pub private_tmp: bool,
    /// Host directory seen as `/tmp`: `$TMPDIR`, else `/tmp`.
    pub host_tmp: PathBuf,
    pub write: bool,
    pub write_fake: Option<String>,
    pub command: Command,
    pub verbose: i32,
    pub join: crate::join::Plan,
    /// Whether the image's mount is shared, and with which server (see [`crate::share`]).
    pub share: Option<crate::share::Request>,
    /// `executing: CMD…`, the last line at `-v`.
    pub executing: String,
    /// Lines to print at `-v` before the run.
    pub notes: Vec<String>,
}

fn host_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The mount point: `-m DIR`, which must exist, or `/var/tmp/$USER.ch/mnt`, made if missing.
fn mountpoint(
    options: &Options,
    user: &str,
    me: &Me,
    notes: &mut Vec<String>,
) -> Result<PathBuf, Failure> {
    match &options.mount {
        Some(dir) if dir.is_empty() => fail("mount point can't be empty string"),
        Some(dir) => match std::fs::metadata(dir) {
            Ok(md) if md.is_dir() => Ok(PathBuf::from(dir)),
            Ok(_) => fail(format!("can't stat mount point: {dir}: Not a directory")),
            Err(e) => fail(format!("can't stat mount point: {dir}: {}", io_text(&e))),
        },
        None => {
            let top = image::default_storage(user);
            let dir = top.join("mnt");
            notes.push(format!("using default mount point: {}", dir.display()));
            // In sticky /var/tmp anyone may have made these first: use them only if they
            // are ours and nobody else can change them (the container's root is built there).
            let top_fd = private_dir(None, &top, me)?;
            private_dir(Some(&top_fd), &dir, me)?;
            Ok(dir)
        }
    }
}

/// Makes directory `path` (its last component under `parent`) if missing, and opens it
/// without following a symlink; refused unless it is ours and nobody else can write to it.
fn private_dir(parent: Option<&OwnedFd>, path: &Path, me: &Me) -> Result<OwnedFd, Failure> {
    let name = match parent {
        Some(_) => Path::new(path.file_name().expect("a named directory")),
        None => path,
    };
    match mkdirat(
        parent.map(|p| p.as_raw_fd()),
        name,
        Mode::from_bits_truncate(0o755),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return fail(with_errno(format!("can't mkdir: {}", path.display()), e)),
    }
    match trust::open_private_dir(parent, name, me) {
        Ok(Some(fd)) => Ok(fd),
        // Gone again since the mkdir: someone is playing games.
        Ok(None) => fail(with_errno(
            format!("can't open: {}", path.display()),
            Errno::ENOENT,
        )),
        Err(Unusable::NotPrivate(why)) => fail(format!(
            "mount point not private: {}: {why}; it must be a directory owned by you and writable only by you (or choose another with -m DIR)",
            path.display()
        )),
        Err(Unusable::Failed(e)) => fail(with_errno(format!("can't open: {}", path.display()), e)),
    }
}

/// Warnings print unless `-q`.
fn warn(options: &Options, msg: &str) {
    if options.verbose >= 0 {
        crate::failure::say("warning", msg);
    }
}

/// A host file for `--set-env=FILE` (a pipe or a device too), at most [`bounded::LIMIT`].
fn host_file(path: &str) -> Result<Vec<u8>, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Runtime(format!("can't open: {path}: {}", io_text(&e))))?;
    bounded::read_to_end(file, bounded::LIMIT)
        .map_err(|e| Failure::Runtime(format!("can't read: {path}: {}", e.text())))
}

pub fn build(options: &Options) -> Result<Plan, Failure> {
    crate::userns::refuse_setuid()?;
    let user = host_var("USER").ok_or_else(|| Failure::Runtime("$USER not set".into()))?;
    let mut notes = vec![format!("verbosity: {}", options.verbose)];
    if options.ch_ssh {
        warn(
            options,
            "--ch-ssh: ignored: this ch-run has no ch-ssh (Charliecloud removed it in 0.33)",
        );
    }
    let me = Me::current();
    let storage = match options.storage.as_deref() {
        Some(dir) => Storage {
            path: PathBuf::from(dir),
            default: false,
        },
        None => Storage {
            path: image::default_storage(&user),
            default: true,
        },
    };
    if !storage.default && !storage.path.exists() {
        warn(
            options,
            &format!("storage directory not found: {}", storage.path.display()),
        );
    }
    let join = crate::join::plan(
        &options.join,
        options.join_pid,
        &|name| std::env::var(name).ok(),
        &mut notes,
    )?;
    if matches!(join, crate::join::Plan::Group(_))
        && options.uid == Some(crate::join::overflow_uid())
    {
        // Inside the container every other host user has that uid: peers could not be told
        // apart from strangers.
        return fail(format!(
            "--join: can't run as uid {} (the overflow uid)",
            crate::join::overflow_uid()
        ));
    }
    let resolved = image::resolve(&options.image, &storage, &me)?;
    if let Some(warning) = &resolved.warning {
        warn(options, warning);
    }
    let image = resolved.image;
    notes.push(format!("image: {}", image.path().display()));
    notes.push(format!("storage: {}", storage.path.display()));
    notes.push(format!("newroot: {}", image.path().display()));
    let uid = options.uid.unwrap_or_else(|| geteuid().as_raw());
    let gid = options.gid.unwrap_or_else(|| getegid().as_raw());
    notes.push(format!("container uid: {uid}"));
    notes.push(format!("container gid: {gid}"));
    notes.push(format!("private /tmp: {}", u8::from(options.private_tmp)));

    let binds = options
        .binds
        .iter()
        .map(|spec| binds::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    for bind in &binds {
        if !bind.src.exists() {
            return fail(format!(
                "can't bind: source not found: {}",
                bind.src.display()
            ));
        }
    }
    let home = if options.home {
        let home = host_var("HOME")
            .ok_or_else(|| Failure::Runtime("--home failed: $HOME not set".into()))?;
        Some((PathBuf::from(home), user.clone()))
    } else {
        None
    };
    let mountpoint = match (&image, &options.mount) {
        (Image::Directory { .. }, Some(_)) => {
            warn(options, "--mount invalid with directory image, ignoring");
            mountpoint(
                &Options {
                    mount: None,
                    ..options.clone()
                },
                &user,
                &me,
                &mut notes,
            )?
        }
        _ => mountpoint(options, &user, &me, &mut notes)?,
    };
    let share = crate::share::plan(
        options,
        &image,
        (uid, gid),
        &|name| std::env::var(name).ok(),
        &mut notes,
    )?;
    let passwd = (!options.no_passwd).then(|| {
        let files = passwd::generate(uid, gid);
        notes.extend(files.notes.iter().cloned());
        files
    });

    let mut env = Environment::from_host();
    for warning in env.adjust_for_container(home.as_ref().map(|(_, u)| u.as_str())) {
        warn(options, &warning);
    }
    let assigned = env.apply(
        &options.env_steps,
        !options.env_no_expand,
        &mut |path| match path {
            Some(p) => host_file(p).map(|bytes| (p.to_string(), bytes)),
            None => image
                .read_file(IMAGE_ENVIRONMENT)
                .map(|b| (IMAGE_ENVIRONMENT.to_string(), b)),
        },
    )?;
    notes.extend(assigned.into_iter().map(|a| format!("environment: {a}")));
    env.mark_running();
    let command = Command::new(&options.command, env.pairs(), options.cd.as_deref())?
        .keep_ignored(crate::exec::ignored_signals());
    let executing = format!(
        "executing: {}",
        options
            .command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let host_tmp = host_var("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    Ok(Plan {
        image,
        mountpoint,
        uid,
        gid,
        binds,
        home,
        passwd,
        private_tmp: options.private_tmp,
        host_tmp,
        write: options.write,
        write_fake: options.write_fake.clone(),
        command,
        verbose: options.verbose,
        join,
        share,
        executing,
        notes,
    })
}
