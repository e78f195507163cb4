//! `scripts/install.sh` as a user runs it, into a temporary DESTDIR and PREFIX; then what
//! it installed, used from there the way a user's shell and man(1) find it: the programs,
//! the man pages (rendered by man-db, with groff's warnings on), and the bash, zsh and fish
//! completions. zsh, fish and bash-completion are needed (.ci/run installs them); without
//! one, its part says so and is skipped, and fails under CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e_tests::corpus::repo_root;

const PREFIX: &str = "/opt/sqfs-install-test";
const PROGRAMS: [&str; 3] = ["sqfs", "squashfuse-rs", "ch-run"];
const PAGES: [&str; 8] = [
    "sqfs",
    "sqfs-info",
    "sqfs-ls",
    "sqfs-cat",
    "sqfs-extract",
    "sqfs-pack",
    "squashfuse-rs",
    "ch-run",
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Says why a part is skipped; under CI that is a failure.
fn missing(what: &str, package: &str, part: &str) {
    e2e_tests::skip::skip(&format!(
        "{part}: {what} is not installed (apt-get install {package}; scripts/setup.sh does)"
    ));
}

/// Whether `program` is on PATH; if not, says why the part is skipped.
fn have(program: &str, part: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        missing(program, program, part);
    }
    found
}

/// The installed tree, `DESTDIR/PREFIX`, and a PATH with its bin first.
struct Installed {
    root: PathBuf,
    path: String,
}

impl Installed {
    fn share(&self, rel: &str) -> PathBuf {
        self.root.join("share").join(rel)
    }

    /// `shell [flags] -c script` in a user's environment with the install on PATH and in
    /// XDG_DATA_DIRS (as a desktop session sets it; fish and bash-completion look there),
    /// MANPATH unset (man-db then derives it from PATH), HOME a scratch directory.
    fn shell(&self, shell: &str, flags: &[&str], script: &str) -> Command {
        let mut cmd = Command::new(shell);
        cmd.args(flags)
            .args(["-c", script])
            .env("PATH", &self.path)
            .env(
                "XDG_DATA_DIRS",
                format!("{}:/usr/share", self.share("").display()),
            )
            .env_remove("MANPATH")
            .env_remove("XDG_DATA_HOME")
            .env_remove("BASH_COMPLETION_USER_DIR")
            .env("HOME", self.root.parent().unwrap());
        cmd
    }
}

fn install(destdir: &Path) -> Installed {
    // The cargo that runs the tests builds there too.
    let cargo_dir = Path::new(env!("CARGO")).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        cargo_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["-k", "10", "1800", "bash"])
        .arg(repo_root().join("scripts/install.sh"))
        .arg(PREFIX)
        .env("DESTDIR", destdir)
        .env("PATH", &path)
        .output()
        .unwrap();
    check("scripts/install.sh", &out);
    let root = destdir.join(PREFIX.trim_start_matches('/'));
    let path = format!("{}:{path}", root.join("bin").display());
    Installed { root, path }
}

fn programs_run(t: &Installed) {
    for program in PROGRAMS {
        let bin = t.root.join("bin").join(program);
        let out = Command::new(&bin).arg("--version").output().unwrap();
        let version = check(&format!("{program} --version"), &out);
        assert!(
            version.trim_end().ends_with(env!("CARGO_PKG_VERSION")) && version.lines().count() == 1,
            "{program} --version: {version}"
        );
        // Found by name on PATH, as a user runs it.
        let which = t
            .shell("sh", &[], &format!("command -v {program}"))
            .output()
            .unwrap();
        assert_eq!(check("command -v", &which).trim(), bin.to_str().unwrap());
    }
}

/// `man NAME`, found through PATH as man-db finds pages (PREFIX/bin → PREFIX/share/man),
/// rendered 80 columns wide with groff's warnings on: no warning, and the sections a page
/// needs.
fn man_pages_render(t: &Installed) {
    for page in PAGES {
        let file = t.share("man/man1").join(format!("{page}.1"));
        let located = t
            .shell("sh", &[], &format!("man -w {page}"))
            .output()
            .unwrap();
        assert_eq!(
            check(&format!("man -w {page}"), &located).trim(),
            file.to_str().unwrap()
        );
        let out = t
            .shell(
                "sh",
                &[],
                &format!("MANWIDTH=80 man --warnings -l '{}'", file.display()),
            )
            .output()
            .unwrap();
        let shown = check(&format!("man -l {page}.1"), &out);
        assert_eq!(text(&out.stderr), "", "{page}.1: groff warnings");
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "SEE ALSO"] {
            assert!(
                shown.lines().any(|l| l == section),
                "{page}.1 has no {section} section:\n{shown}"
            );
        }
        assert!(
            shown.lines().all(|l| l.chars().count() <= 80),
            "{page}.1: a line wider than 80 columns:\n{shown}"
        );
    }
}

fn rendered(t: &Installed, page: &str) -> String {
    let file = t.share("man/man1").join(format!("{page}.1"));
    let out = t
        .shell(
            "sh",
            &[],
            &format!("MANWIDTH=200 man -l '{}' | col -b", file.display()),
        )
        .output()
        .unwrap();
    check(&format!("man -l {page}.1"), &out)
}

/// What each page must tell: ch-run's exit codes, environment and files; every -o option
/// of squashfuse-rs; each sqfs command's options.
fn man_pages_tell_what_they_should(t: &Installed) {
    let ch_run = rendered(t, "ch-run");
    for needed in [
        "--join-tag",
        "--set-env0",
        "-W, --write-fake",
        "ENVIRONMENT",
        "CH_IMAGE_STORAGE",
        "SLURM_STEP_ID",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "FILES",
        "/var/tmp/$USER.ch/mnt",
        "EXAMPLES",
    ] {
        assert!(
            ch_run.contains(needed),
            "ch-run.1 lacks {needed}:\n{ch_run}"
        );
    }
    let exit_status = ch_run
        .split("EXIT STATUS")
        .nth(1)
        .and_then(|s| s.split("ENVIRONMENT").next())
        .unwrap();
    for code in ["128+N", "31", "49", "64"] {
        assert!(
            exit_status
                .lines()
                .any(|l| l.trim_start().starts_with(code)),
            "ch-run.1: exit status {code}:\n{exit_status}"
        );
    }

    let fuse = rendered(t, "squashfuse-rs");
    // The options squashfuse_ll's users pass, the ones applied from libfuse, ours, some
    // accepted with no effect, and the refused one.
    for option in [
        "offset=N",
        "timeout=N",
        "uid=N",
        "gid=N",
        "subdir=PATH",
        "notify_pipe=PATH",
        "allow_other",
        "allow_root",
        "default_permissions",
        "fsname=NAME",
        "subtype=NAME",
        "max_read=N",
        "max_readahead=N",
        "max_threads=N",
        "auto_unmount",
        "noexec",
        "context=LABEL",
        "read_ahead_kb=N",
        "kernel_cache",
        "entry_timeout=SECONDS",
        "clone_fd",
        "blkdev",
    ] {
        assert!(
            fuse.lines()
                .any(|l| l.trim() == option || l.trim_start().starts_with(&format!("{option} "))),
            "squashfuse-rs.1: no entry for -o {option}:\n{fuse}"
        );
    }

    let extract = rendered(t, "sqfs-extract");
    for needed in ["-p, --processors", "-f, --force", "--offset", "unsquashfs"] {
        assert!(
            extract.contains(needed),
            "sqfs-extract.1 lacks {needed}:\n{extract}"
        );
    }
    let sqfs = rendered(t, "sqfs");
    for needed in ["sqfs-info(1)", "sqfs-extract(1)", "unsquashfs(1)"] {
        assert!(sqfs.contains(needed), "sqfs.1 lacks {needed}:\n{sqfs}");
    }
}

/// Bash: bash-completion loads each file by the command's name from where the install put
/// it, and completing gives what the command takes.
fn bash_completes(t: &Installed) {
    let loader = Path::new("/usr/share/bash-completion/bash_completion");
    let setup = if loader.exists() {
        format!(". {}; ", loader.display())
    } else {
        missing(
            "bash-completion",
            "bash-completion",
            "bash completion loaded by name (the files are sourced instead)",
        );
        String::new()
    };
    // (words, the word completed, what must be offered)
    let cases: [(&str, &str, &str); 5] = [
        ("sqfs ex", "ex", "extract"),
        ("sqfs extract --pro", "--pro", "--processors"),
        ("sqfs ls -", "-", "--offset"),
        ("squashfuse-rs -", "-", "-o"),
        ("ch-run --join-c", "--join-c", "--join-ct"),
    ];
    for (line, current, expected) in cases {
        let command = line.split(' ').next().unwrap();
        let load = if setup.is_empty() {
            format!(
                ". '{}'",
                t.share("bash-completion/completions")
                    .join(command)
                    .display()
            )
        } else {
            format!("__load_completion {command}")
        };
        let script = format!(
            "{setup}{load} || exit 3; \
             spec=$(complete -p {command}) || exit 4; \
             fn=${{spec##*-F }}; fn=${{fn%% *}}; \
             read -r -a COMP_WORDS <<< '{line}'; \
             [[ '{line}' == *' ' ]] && COMP_WORDS+=(''); \
             COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             prev=${{COMP_WORDS[COMP_CWORD-1]}}; \
             \"$fn\" {command} '{current}' \"$prev\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = t.shell("bash", &[], &script).output().unwrap();
        let offered = check(&format!("bash completion of '{line}'"), &out);
        assert!(
            offered.lines().any(|w| w == expected),
            "bash completion of '{line}' offers no {expected}: {offered:?}"
        );
    }
}

/// zsh: every file parses, and compinit, with the install's site-functions in $fpath, takes
/// each as its command's completion.
fn zsh_completes(t: &Installed) {
    if !have("zsh", "zsh completion") {
        return;
    }
    let dir = t.share("zsh/site-functions");
    for program in PROGRAMS {
        let file = dir.join(format!("_{program}"));
        let out = Command::new("zsh").arg("-n").arg(&file).output().unwrap();
        check(&format!("zsh -n {}", file.display()), &out);
        assert_eq!(text(&out.stderr), "");
        let script = format!(
            "fpath=('{}' $fpath); autoload -U compinit; compinit -u -D; \
             print -r -- ${{_comps[{program}]}}",
            dir.display()
        );
        let out = t.shell("zsh", &["-f"], &script).output().unwrap();
        assert_eq!(
            check("zsh compinit", &out).trim(),
            format!("_{program}"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// fish: every file parses and loads without a message, and fish, finding them through
/// $XDG_DATA_DIRS, completes the commands.
fn fish_completes(t: &Installed) {
    if !have("fish", "fish completion") {
        return;
    }
    for program in PROGRAMS {
        let file = t
            .share("fish/vendor_completions.d")
            .join(format!("{program}.fish"));
        let out = Command::new("fish")
            .arg("--no-execute")
            .arg(&file)
            .output()
            .unwrap();
        check(&format!("fish --no-execute {}", file.display()), &out);
        let out = t
            .shell("fish", &[], &format!("source '{}'", file.display()))
            .output()
            .unwrap();
        check(&format!("fish: source {}", file.display()), &out);
        assert_eq!(text(&out.stderr), "", "sourcing {program}.fish");
    }
    let cases = [
        ("sqfs ex", "extract"),
        ("sqfs extract --pro", "--processors"),
        ("squashfuse-rs -", "-o"),
        ("ch-run --join-c", "--join-ct"),
        ("ch-run -", "-?"),
    ];
    for (line, expected) in cases {
        let out = t
            .shell("fish", &[], &format!("complete --do-complete '{line}'"))
            .output()
            .unwrap();
        let offered = check(&format!("fish completion of '{line}'"), &out);
        assert!(
            offered
                .lines()
                .any(|l| l.split('\t').next() == Some(expected)),
            "fish completion of '{line}' offers no {expected}: {offered:?}"
        );
    }
}

#[test]
fn install_puts_programs_man_pages_and_completions_under_the_prefix() {
    let destdir = std::env::temp_dir().join(format!("sqfs-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&destdir);
    let t = install(&destdir);
    programs_run(&t);
    man_pages_render(&t);
    man_pages_tell_what_they_should(&t);
    bash_completes(&t);
    zsh_completes(&t);
    fish_completes(&t);
    let _ = std::fs::remove_dir_all(&destdir);
}
