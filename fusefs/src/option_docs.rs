//! Every `-o` option `squashfuse-rs` takes, with what it does, for the man page (`docgen/`
//! renders it). The options applied are listed here by hand, next to the parser in
//! `options.rs` that the tests below hold them to; those accepted with no effect come from
//! the parser's own tables, with the reason it logs.

use crate::options::{ValueKind, FLAGS_WITHOUT_EFFECT, VALUES_WITHOUT_EFFECT};

/// One option as written after `-o` (with a placeholder for its value) and what it does.
pub struct OptionDoc {
    pub spelling: String,
    pub meaning: String,
}

/// A group of options with a heading.
pub struct OptionGroup {
    pub title: &'static str,
    pub options: Vec<OptionDoc>,
}

fn docs(list: &[(&str, &str)]) -> Vec<OptionDoc> {
    list.iter()
        .map(|(spelling, meaning)| OptionDoc {
            spelling: spelling.to_string(),
            meaning: meaning.to_string(),
        })
        .collect()
}

/// squashfuse_ll's own options.
const SQUASHFUSE: &[(&str, &str)] = &[
    ("offset=N", "The SquashFS starts N bytes into the file."),
    (
        "timeout=N",
        "Unmount after N idle seconds: N seconds in which no file of the mount was open.",
    ),
    ("uid=N", "Every file and directory is owned by user N."),
    ("gid=N", "Every file and directory is owned by group N."),
    (
        "subdir=PATH",
        "Mount directory PATH of the image as the root of the mount.",
    ),
    (
        "notify_pipe=PATH",
        "Write s (mounted) or f (failed) to the FIFO PATH, as squashfuse does.",
    ),
];

/// libfuse's options that do something here.
const LIBFUSE: &[(&str, &str)] = &[
    ("debug", "As -d: debug output, in the foreground."),
    (
        "allow_other",
        "Let every user in. Root may always ask for it; a plain user only if /etc/fuse.conf has user_allow_other.",
    ),
    (
        "allow_root",
        "Let root in as well as the owner. Not with allow_other.",
    ),
    (
        "default_permissions",
        "The kernel checks access against file modes, owners and groups.",
    ),
    (
        "fsname=NAME",
        "The source shown in /proc/mounts (default: the image's path).",
    ),
    (
        "subtype=NAME",
        "The type shown in /proc/mounts is fuse.NAME (default: fuse.squashfuse).",
    ),
    ("max_read=N", "The kernel sends READ requests of at most N bytes."),
    (
        "max_readahead=N",
        "Cap the kernel's readahead window at N bytes (applied as root).",
    ),
    (
        "max_threads=N",
        "N worker threads, at least 1 (default: one per CPU, at least 2; -s: one).",
    ),
    (
        "auto_unmount",
        "Unmount if the daemon dies (killed, crashed): a watcher process does it.",
    ),
    ("nosuid", "Set-user-ID bits are ignored (the default)."),
    ("suid", "Set-user-ID bits are honoured (root only)."),
    ("nodev", "Device files cannot be opened (the default)."),
    ("dev", "Device files can be opened (root only)."),
    ("noexec", "No file of the mount may be executed."),
    ("exec", "Files may be executed (the default)."),
    ("noatime", "The mount flag noatime."),
    ("atime", "Undoes noatime (the default)."),
    ("sync", "The mount flag sync."),
    ("async", "Undoes sync (the default)."),
    ("dirsync", "The mount flag dirsync."),
    (
        "context=LABEL",
        "SELinux label of every file, passed to the kernel as it is.",
    ),
    (
        "fscontext=LABEL",
        "SELinux label of the filesystem, passed to the kernel.",
    ),
    (
        "defcontext=LABEL",
        "SELinux label of files without one, passed to the kernel.",
    ),
    (
        "rootcontext=LABEL",
        "SELinux label of the root directory, passed to the kernel.",
    ),
    ("ro", "Read-only, which the mount always is."),
];

/// Options of this implementation only.
const OURS: &[(&str, &str)] = &[(
    "read_ahead_kb=N",
    "As root, set the mount's kernel readahead window to N KiB before the mount is reported ready (default 1024; the kernel's own for FUSE is 128). A plain user keeps the kernel's.",
)];

fn placeholder(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Number => "N",
        ValueKind::Seconds => "SECONDS",
        ValueKind::Text => "NAME",
    }
}

/// Every option, in groups. Several `-o` may be given, each a comma-separated list; a
/// later option of a pair (`exec` after `noexec`) wins.
pub fn groups() -> Vec<OptionGroup> {
    let mut no_effect: Vec<OptionDoc> = FLAGS_WITHOUT_EFFECT
        .iter()
        .map(|(name, why)| OptionDoc {
            spelling: name.to_string(),
            meaning: format!("No effect: {why}."),
        })
        .collect();
    no_effect.extend(
        VALUES_WITHOUT_EFFECT
            .iter()
            .map(|(name, kind, why)| OptionDoc {
                spelling: format!("{name}={}", placeholder(*kind)),
                meaning: format!("No effect: {why}."),
            }),
    );
    vec![
        OptionGroup {
            title: "squashfuse_ll's options",
            options: docs(SQUASHFUSE),
        },
        OptionGroup {
            title: "libfuse's options, applied",
            options: docs(LIBFUSE),
        },
        OptionGroup {
            title: "Options of squashfuse-rs",
            options: docs(OURS),
        },
        OptionGroup {
            title: "libfuse's options accepted with no effect (-d logs why)",
            options: no_effect,
        },
    ]
}

/// Refused although libfuse knows it: what the man page says about it.
pub const REFUSED: &[(&str, &str)] = &[(
    "blkdev",
    "Refused: it needs a block device, and squashfuse-rs mounts image files.",
)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Args, MountConfig};
    use clap::Parser;

    fn parse(opt: &str) -> Result<MountConfig, String> {
        let args = Args::try_parse_from(["squashfuse-rs", "-o", opt, "img", "mnt"])
            .map_err(|e| e.to_string())?;
        MountConfig::from_args(args).map_err(|e| e.to_string())
    }

    /// A value for each placeholder the table uses.
    fn example(spelling: &str) -> String {
        match spelling.split_once('=') {
            None => spelling.to_string(),
            Some((key, placeholder)) => {
                let value = match placeholder {
                    "N" => "4096",
                    "SECONDS" => "1.5",
                    "PATH" => "a/b",
                    "NAME" | "LABEL" => "system_u:object_r:tmp_t:s0",
                    other => panic!("{spelling}: unknown placeholder {other}"),
                };
                format!("{key}={value}")
            }
        }
    }

    #[test]
    fn every_documented_option_is_taken_and_without_its_value_refused() {
        let all = groups();
        assert!(all.iter().all(|g| !g.options.is_empty()));
        for option in all.iter().flat_map(|g| &g.options) {
            let opt = example(&option.spelling);
            assert!(parse(&opt).is_ok(), "{opt}: {:?}", parse(&opt).err());
            assert!(!option.meaning.is_empty());
            if let Some((key, _)) = option.spelling.split_once('=') {
                assert!(parse(key).is_err(), "{key} taken without a value");
            } else {
                assert!(parse(&format!("{opt}=1")).is_err(), "{opt}=1 taken");
            }
        }
        for (name, _) in REFUSED {
            assert!(parse(name).is_err());
        }
    }

    #[test]
    fn documented_once_each_and_what_is_not_documented_is_refused() {
        let all = groups();
        let mut names: Vec<&str> = all
            .iter()
            .flat_map(|g| &g.options)
            .map(|o| o.spelling.split('=').next().unwrap())
            .collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "an option is documented twice");
        // Near misses of documented names are not taken silently.
        for name in ["offsets", "allow-other", "uid_", "max_readaheads", "nosync"] {
            assert!(parse(&example(&format!("{name}=N"))).is_err(), "{name}");
            assert!(parse(name).is_err(), "{name}");
        }
    }
}
