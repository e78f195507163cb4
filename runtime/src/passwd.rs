//! The `/etc/passwd` and `/etc/group` a container sees: root, nobody and the user it runs
//! as, named as on the host when the host knows the ids, with dummy names otherwise.

use nix::unistd::{Gid, Group, Uid, User};

/// Names used when the host has no entry for an id.
const DUMMY_USER: &str = "charlie";
const DUMMY_GECOS: &str = "Charlie";
const DUMMY_GROUP: &str = "charliegroup";

pub struct Files {
    pub passwd: String,
    pub group: String,
    /// Notes for `-v` (e.g. ids the host doesn't know).
    pub notes: Vec<String>,
}

/// The files for a container whose user is `uid`:`gid`.
pub fn generate(uid: u32, gid: u32) -> Files {
    let mut notes = Vec::new();
    let (name, gecos) = match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => (u.name, u.gecos.to_string_lossy().into_owned()),
        _ => {
            notes.push(format!("UID {uid} not found; using dummy info"));
            (DUMMY_USER.to_string(), DUMMY_GECOS.to_string())
        }
    };
    let group = match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => {
            notes.push(format!("GID {gid} not found; using dummy info"));
            DUMMY_GROUP.to_string()
        }
    };
    // Root first, then nobody, then the user (who replaces either when it is one of them).
    let user_line = format!("{name}:x:{uid}:{gid}:{gecos}:/:/bin/sh\n");
    let mut passwd = String::new();
    for (id, line) in [
        (0, "root:x:0:0:root:/root:/bin/sh\n"),
        (65534, "nobody:x:65534:65534:nobody:/:/bin/false\n"),
    ] {
        passwd.push_str(if uid == id { &user_line } else { line });
    }
    if uid != 0 && uid != 65534 {
        passwd.push_str(&user_line);
    }
    let group_line = format!("{group}:x:{gid}:\n");
    let mut groups = String::new();
    for (id, line) in [(0, "root:x:0:\n"), (65534, "nogroup:x:65534:\n")] {
        groups.push_str(if gid == id { &group_line } else { line });
    }
    if gid != 0 && gid != 65534 {
        groups.push_str(&group_line);
    }
    Files {
        passwd,
        group: groups,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_nobody_and_the_user() {
        let f = generate(0, 0);
        let users: Vec<&str> = f
            .passwd
            .lines()
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(users, ["root", "nobody"]);
        assert_eq!(f.passwd.lines().count(), 2);
        assert!(f.notes.is_empty());
        let f = generate(4_000_123, 4_000_321);
        assert!(f
            .passwd
            .contains("charlie:x:4000123:4000321:Charlie:/:/bin/sh\n"));
        assert!(f.passwd.starts_with("root:x:0:0:"));
        assert!(f.group.contains("charliegroup:x:4000321:\n"));
        assert_eq!(f.notes[0], "UID 4000123 not found; using dummy info");
    }
}
