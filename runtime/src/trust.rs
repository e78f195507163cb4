//! Who besides the user can change a file or a directory, from its owner and mode. It decides
//! whether ch-run may use a directory it did not choose (in sticky, world-writable `/var/tmp`
//! anyone can make `/var/tmp/$USER.ch` first) and whether to warn about an image someone
//! else could swap or rewrite. Root can change anything and is never "someone else".

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{Gid, Group, Uid, User};

/// The user ch-run runs for.
pub struct Me {
    uid: u32,
    /// The user's private group (same name as the user, no other members), if it has one:
    /// write permission for it is the user's own (many sites use umask 002 with such groups).
    private_gid: Option<u32>,
}

impl Me {
    /// The effective user.
    pub fn current() -> Self {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let name = User::from_uid(uid).ok().flatten().map(|u| u.name);
        let private_gid = match (name, Group::from_gid(gid)) {
            (Some(name), Ok(Some(g))) if g.name == name && g.mem.iter().all(|m| *m == name) => {
                Some(gid.as_raw())
            }
            _ => None,
        };
        Me {
            uid: uid.as_raw(),
            private_gid,
        }
    }

    #[cfg(test)]
    fn new(uid: u32, private_gid: Option<u32>) -> Self {
        Me { uid, private_gid }
    }
}

fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}

fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => format!("gid {gid}"),
    }
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Why a user other than `me` and root may write to what `st` describes ("owned by bob",
/// "writable by group staff", "writable by others"); None if nobody else can.
pub fn others_can_write(st: &FileStat, me: &Me) -> Option<String> {
    if st.st_uid != me.uid && st.st_uid != 0 {
        return Some(format!("owned by {}", user_name(st.st_uid)));
    }
    let group = st.st_mode & 0o020 != 0 && Some(st.st_gid) != me.private_gid;
    let others = st.st_mode & 0o002 != 0;
    match (group, others) {
        (true, true) => Some(format!(
            "writable by group {} and others",
            group_name(st.st_gid)
        )),
        (true, false) => Some(format!("writable by group {}", group_name(st.st_gid))),
        (false, true) => Some("writable by others".into()),
        (false, false) => None,
    }
}

/// Why what `st` describes (not following a symlink) is not a directory that only `me` can
/// change; None if it is one.
pub fn not_private_dir(st: &FileStat, me: &Me) -> Option<String> {
    match kind(st) {
        SFlag::S_IFDIR => {}
        SFlag::S_IFLNK => return Some("a symbolic link".into()),
        _ => return Some("not a directory".into()),
    }
    if st.st_uid != me.uid {
        return Some(format!("owned by {}", user_name(st.st_uid)));
    }
    others_can_write(st, me)
}

/// Why a directory ch-run did not choose can't be used.
#[derive(Debug)]
pub enum Unusable {
    /// It is not a directory only the user can change (the reason).
    NotPrivate(String),
    /// `stat` or `open` failed.
    Failed(Errno),
}

/// Opens directory `name` (under `parent`, else from the working directory) without
/// following a symlink, as `O_PATH`, if it is one that only `me` can change: what is looked
/// up under the descriptor afterwards is then the user's own. None: it does not exist.
pub fn open_private_dir(
    parent: Option<&OwnedFd>,
    name: &Path,
    me: &Me,
) -> Result<Option<OwnedFd>, Unusable> {
    let dirfd = parent.map(|p| p.as_raw_fd());
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let st = match openat(dirfd, name, flags, Mode::empty()) {
        // SAFETY: openat returned a new descriptor we own.
        Ok(raw) => {
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let st = fstat(fd.as_raw_fd()).map_err(Unusable::Failed)?;
            if not_private_dir(&st, me).is_none() {
                return Ok(Some(fd));
            }
            st
        }
        Err(Errno::ENOENT) => return Ok(None),
        // A symlink (O_NOFOLLOW with O_PATH opens it, O_DIRECTORY then refuses) or a file.
        Err(Errno::ENOTDIR) => {
            fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(Unusable::Failed)?
        }
        Err(e) => return Err(Unusable::Failed(e)),
    };
    Err(Unusable::NotPrivate(
        not_private_dir(&st, me).unwrap_or_else(|| "not a directory".into()),
    ))
}

/// Why someone else could replace `entry` in directory `dir` (rename it away and put another
/// file in its place); None if nobody can. In a sticky directory (`/tmp`) only an entry's
/// owner may rename it.
pub fn others_can_replace(dir: &FileStat, entry: &FileStat, me: &Me) -> Option<String> {
    let why = others_can_write(dir, me)?;
    let sticky = dir.st_mode & 0o1000 != 0;
    let entry_safe = entry.st_uid == me.uid || entry.st_uid == 0;
    let owner_is_other = dir.st_uid != me.uid && dir.st_uid != 0;
    if sticky && entry_safe && !owner_is_other {
        return None;
    }
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(kind: u32, mode: u32, uid: u32, gid: u32) -> FileStat {
        // SAFETY: stat is plain integers; all-zero is a valid value.
        let mut st: FileStat = unsafe { std::mem::zeroed() };
        st.st_mode = kind | mode;
        st.st_uid = uid;
        st.st_gid = gid;
        st
    }

    const DIR: u32 = libc::S_IFDIR;
    const REG: u32 = libc::S_IFREG;

    #[test]
    fn who_else_can_write() {
        // Unknown ids are named by number (no such user or group on any sane host).
        let me = Me::new(4_000_001, Some(4_000_001));
        let mine = |mode| stat(REG, mode, 4_000_001, 4_000_001);
        assert_eq!(others_can_write(&mine(0o644), &me), None);
        // The user's private group may write: that is the user.
        assert_eq!(others_can_write(&mine(0o664), &me), None);
        assert_eq!(
            others_can_write(&mine(0o666), &me).unwrap(),
            "writable by others"
        );
        let shared = stat(REG, 0o664, 4_000_001, 4_000_999);
        assert_eq!(
            others_can_write(&shared, &me).unwrap(),
            "writable by group gid 4000999"
        );
        let theirs = stat(REG, 0o444, 4_000_002, 4_000_002);
        assert_eq!(
            others_can_write(&theirs, &me).unwrap(),
            "owned by uid 4000002"
        );
        assert_eq!(others_can_write(&stat(REG, 0o644, 0, 0), &me), None);
    }

    #[test]
    fn private_directories() {
        let me = Me::new(4_000_001, None);
        assert_eq!(not_private_dir(&stat(DIR, 0o755, 4_000_001, 1), &me), None);
        assert_eq!(
            not_private_dir(&stat(DIR, 0o755, 0, 0), &me).unwrap(),
            "owned by root"
        );
        assert_eq!(
            not_private_dir(&stat(libc::S_IFLNK, 0o777, 4_000_001, 1), &me).unwrap(),
            "a symbolic link"
        );
        assert_eq!(
            not_private_dir(&stat(REG, 0o644, 4_000_001, 1), &me).unwrap(),
            "not a directory"
        );
        assert_eq!(
            not_private_dir(&stat(DIR, 0o1777, 4_000_001, 4_000_999), &me).unwrap(),
            "writable by group gid 4000999 and others"
        );
    }

    #[test]
    fn replacing_an_entry() {
        let me = Me::new(4_000_001, None);
        let mine = stat(REG, 0o644, 4_000_001, 1);
        let theirs = stat(REG, 0o644, 4_000_002, 1);
        let tmp = stat(DIR, 0o1777, 0, 0);
        assert_eq!(others_can_replace(&tmp, &mine, &me), None);
        assert!(others_can_replace(&tmp, &theirs, &me).is_some());
        let open = stat(DIR, 0o777, 0, 0);
        assert!(others_can_replace(&open, &mine, &me).is_some());
        let closed = stat(DIR, 0o755, 4_000_001, 1);
        assert_eq!(others_can_replace(&closed, &theirs, &me), None);
    }
}
