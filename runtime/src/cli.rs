//! ch-run's command line, with Charliecloud's option names and meanings.
//!
//! `ch-run [OPTION…] IMAGE [--] CMD [ARG…]`, parsed the GNU way, as Charliecloud's argp
//! does: options are recognised anywhere before `--` (also after IMAGE and CMD), long options
//! may be abbreviated, and everything after `--` is the command's.

use std::ffi::OsString;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueHint};

use crate::failure::Failure;

#[derive(Parser, Debug)]
#[command(
    name = "ch-run",
    version = crate::VERSION,
    about = "Run a command in a Charliecloud container.",
    override_usage = "ch-run [OPTION...] IMAGE -- CMD [ARG...]",
    after_help = "Example:\n\n  $ ch-run /data/foo.sqfs -- echo hello\n  hello\n\nYou cannot use this program to actually change your UID.",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    help_template = "{usage-heading} {usage}\n\n{about}\n\n{options}{after-help}"
)]
struct Cli {
    /// mount SRC at guest DST (default: same as SRC)
    #[arg(short = 'b', long = "bind", value_name = "SRC[:DST]", action = ArgAction::Append,
          value_hint = ValueHint::AnyPath)]
    bind: Vec<String>,
    /// initial working directory in container
    #[arg(short = 'c', long = "cd", value_name = "DIR", value_hint = ValueHint::Other)]
    cd: Option<String>,
    /// don't expand $ in --set-env input
    #[arg(long = "env-no-expand")]
    env_no_expand: bool,
    /// exit successfully if FEAT is enabled
    #[arg(long = "feature", value_name = "FEAT")]
    feature: Option<String>,
    /// run as GID within container
    #[arg(short = 'g', long = "gid", value_name = "GID")]
    gid: Option<String>,
    /// mount host $HOME at guest /home/$USER
    #[arg(long = "home")]
    home: bool,
    /// use same container as peer ch-run
    #[arg(short = 'j', long = "join")]
    join: bool,
    /// number of join peers (implies --join)
    #[arg(long = "join-ct", value_name = "N")]
    join_ct: Option<String>,
    /// join a namespace using a PID
    #[arg(long = "join-pid", value_name = "PID")]
    join_pid: Option<String>,
    /// label for peer group (implies --join)
    #[arg(long = "join-tag", value_name = "TAG")]
    join_tag: Option<String>,
    /// SquashFS mount point
    #[arg(short = 'm', long = "mount", value_name = "DIR", value_hint = ValueHint::DirPath)]
    mount: Option<String>,
    /// don't bind-mount /etc/{passwd,group}
    #[arg(long = "no-passwd")]
    no_passwd: bool,
    /// don't share the image's mount with this user's other containers
    #[arg(long = "no-share")]
    no_share: bool,
    /// (deprecated)
    #[arg(long = "no-home", hide = true)]
    no_home: bool,
    /// (0.31's; ignored)
    #[arg(long = "ch-ssh", hide = true)]
    ch_ssh: bool,
    /// set DIR as storage directory
    #[arg(short = 's', long = "storage", value_name = "DIR", value_hint = ValueHint::DirPath)]
    storage: Option<String>,
    /// set environment variables per ARG (newline-delimited)
    #[arg(long = "set-env", value_name = "ARG", num_args = 0..=1, require_equals = true,
          default_missing_value = "", action = ArgAction::Append)]
    set_env: Vec<String>,
    /// set environment variables per ARG (null-byte-delimited)
    #[arg(long = "set-env0", value_name = "ARG", num_args = 0..=1, require_equals = true,
          default_missing_value = "", action = ArgAction::Append)]
    set_env0: Vec<String>,
    /// unset environment variable(s)
    #[arg(long = "unset-env", value_name = "GLOB", action = ArgAction::Append)]
    unset_env: Vec<String>,
    /// use container-private /tmp
    #[arg(short = 't', long = "private-tmp")]
    private_tmp: bool,
    /// run as UID within container
    #[arg(short = 'u', long = "uid", value_name = "UID")]
    uid: Option<String>,
    /// do unsafe things (internal use only)
    #[arg(long = "unsafe")]
    unsafe_: bool,
    /// be more verbose (can be repeated)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,
    /// print less output (can be repeated)
    #[arg(short = 'q', long = "quiet", action = ArgAction::Count)]
    quiet: u8,
    /// mount image read-write (directory images)
    #[arg(short = 'w', long = "write")]
    write: bool,
    /// overlay a writeable tmpfs on the image (SIZE: tmpfs size, default 12%)
    #[arg(short = 'W', long = "write-fake", value_name = "SIZE", num_args = 0..=1,
          require_equals = true, default_missing_value = "")]
    write_fake: Option<String>,
    /// print version and exit
    #[arg(short = 'V', long = "version")]
    version: bool,
    /// give this help list
    #[arg(short = '?', long = "help")]
    help: bool,
    /// give a short usage message
    #[arg(long = "usage")]
    usage: bool,
    /// IMAGE (a SquashFS file, a directory, or an image name in storage), then CMD [ARG...]
    #[arg(value_name = "IMAGE CMD")]
    positional: Vec<OsString>,
}

/// The command line's definition, for the man page and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// One step of environment editing, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvStep {
    /// `--set-env=VAR=VALUE`.
    Assign(String),
    /// `--set-env[0][=FILE]`: a host file, or `/ch/environment` in the image when None.
    File { path: Option<String>, nul: bool },
    /// `--unset-env=GLOB`.
    Unset(String),
}

/// What to do about `--join`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinRequest {
    pub enabled: bool,
    pub count: Option<u32>,
    pub tag: Option<String>,
}

/// The parsed command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub binds: Vec<String>,
    pub cd: Option<String>,
    pub env_steps: Vec<EnvStep>,
    pub env_no_expand: bool,
    pub gid: Option<u32>,
    pub uid: Option<u32>,
    pub home: bool,
    pub join: JoinRequest,
    pub join_pid: Option<i32>,
    pub mount: Option<String>,
    pub no_passwd: bool,
    /// `--no-share`: mount the image for this run alone (see `share`).
    pub no_share: bool,
    pub storage: Option<String>,
    pub private_tmp: bool,
    pub unsafe_: bool,
    pub verbose: i32,
    pub write: bool,
    pub write_fake: Option<String>,
    /// `--ch-ssh` was given (accepted from 0.31 scripts, ignored).
    pub ch_ssh: bool,
    pub image: String,
    pub command: Vec<OsString>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Request {
    Run(Box<Options>),
    /// Print this text on stdout and exit 0 (`--help`, `--usage`, `-V`).
    Print(String),
    /// `--feature=FEAT`.
    Feature(String),
}

/// A decimal number the way Charliecloud's `parse_int` takes it (leading blanks and a sign
/// allowed, nothing after the digits), with its messages.
fn number<T: TryFrom<i64>>(option: &str, text: &str) -> Result<T, Failure> {
    let err = |what: &str| Failure::Runtime(format!("{option}: {what}"));
    let t = text.trim_start();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return Err(err("no digits found"));
    }
    if end != digits.len() {
        return Err(err("extra characters after digits"));
    }
    let value: i64 = digits[..end]
        .parse::<i32>()
        .map_err(|_| err("out of range"))?
        .into();
    if negative && value != 0 {
        return Err(err("must be non-negative"));
    }
    T::try_from(value).map_err(|_| err("out of range"))
}

/// Checks a `-W` size the way tmpfs reads `size=` (the kernel's `memparse`, then an
/// optional `%` of memory), so a bad one is refused with a reason, not as `mount`'s EINVAL.
/// Empty means the default. Only decimal numbers are taken (the kernel also takes 0x…).
fn tmpfs_size(text: String) -> Result<String, Failure> {
    const SUFFIXES: &str = "kKmMgGtTpPeE";
    let invalid = |what: String| {
        Failure::Runtime(format!(
            "--write-fake: invalid size: {what} (expected N, N followed by k, m, g, t, p or e, or N%)"
        ))
    };
    if text.is_empty() {
        return Ok(text);
    }
    let end = text.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return Err(invalid(format!("{text}: no digits found")));
    }
    let rest = &text[end..];
    let rest_ok = match rest.strip_suffix('%').unwrap_or(rest) {
        "" => true,
        unit => unit.len() == 1 && SUFFIXES.contains(unit),
    };
    if !rest_ok {
        return Err(invalid(format!(
            "{text}: extra characters after digits: {rest}"
        )));
    }
    if text[..end].parse::<u64>().is_err() {
        return Err(invalid(format!("{text}: out of range")));
    }
    Ok(text)
}

/// Parses `args` (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, Failure> {
    let mut command = Cli::command();
    let argv = std::iter::once(OsString::from("ch-run")).chain(args);
    let matches = command.try_get_matches_from_mut(argv).map_err(|e| {
        // clap's message is several lines with its own "error:" prefix; ch-run prints one.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("bad command line");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        Failure::Usage(format!("{first} (try --help)"))
    })?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Failure::Usage(e.to_string()))?;
    if cli.help {
        return Ok(Request::Print(command.render_help().to_string()));
    }
    if cli.usage {
        return Ok(Request::Print(format!(
            "{}\n",
            command.render_usage().to_string().trim_end()
        )));
    }
    if cli.version {
        return Ok(Request::Print(format!("{}\n", crate::VERSION)));
    }
    if let Some(feature) = cli.feature {
        return Ok(Request::Feature(feature));
    }

    let env_steps = env_steps(&matches);
    let mut positional = cli.positional.into_iter();
    let (Some(image), command) = (positional.next(), positional.collect::<Vec<_>>()) else {
        return Err(Failure::Usage("IMAGE and/or CMD not specified".into()));
    };
    if command.is_empty() {
        return Err(Failure::Usage("IMAGE and/or CMD not specified".into()));
    }
    let image = image.to_string_lossy().into_owned();
    if cli.verbose > 3 {
        return Err(Failure::Runtime(
            "--verbose can be specified at most thrice".into(),
        ));
    }
    for glob in &cli.unset_env {
        if glob.is_empty() {
            return Err(Failure::Runtime(
                "--unset-env: GLOB must have non-zero length".into(),
            ));
        }
    }
    if cli.join_tag.as_deref() == Some("") {
        return Err(Failure::Runtime("--join-tag: can't be empty string".into()));
    }
    let join = JoinRequest {
        enabled: cli.join || cli.join_ct.is_some() || cli.join_tag.is_some(),
        count: cli
            .join_ct
            .as_deref()
            .map(|n| number("--join-ct", n))
            .transpose()?,
        tag: cli.join_tag,
    };
    if join.count == Some(0) {
        return Err(Failure::Runtime("--join-ct: must be at least 1".into()));
    }
    Ok(Request::Run(Box::new(Options {
        binds: cli.bind,
        cd: cli.cd,
        env_steps,
        env_no_expand: cli.env_no_expand,
        gid: cli.gid.as_deref().map(|g| number("--gid", g)).transpose()?,
        uid: cli.uid.as_deref().map(|u| number("--uid", u)).transpose()?,
        home: cli.home,
        join,
        join_pid: cli
            .join_pid
            .as_deref()
            .map(|p| number("--join-pid", p))
            .transpose()?,
        mount: cli.mount,
        no_passwd: cli.no_passwd,
        no_share: cli.no_share,
        storage: cli
            .storage
            .or_else(|| std::env::var("CH_IMAGE_STORAGE").ok()),
        private_tmp: cli.private_tmp,
        unsafe_: cli.unsafe_,
        verbose: i32::from(cli.verbose) - i32::from(cli.quiet),
        write: cli.write,
        write_fake: cli.write_fake.map(tmpfs_size).transpose()?,
        ch_ssh: cli.ch_ssh,
        image,
        command,
    })))
}

/// `--set-env`, `--set-env0` and `--unset-env` in the order they were given: they apply
/// strictly left to right.
fn env_steps(matches: &clap::ArgMatches) -> Vec<EnvStep> {
    let mut steps: Vec<(usize, EnvStep)> = Vec::new();
    for (id, nul) in [("set_env", false), ("set_env0", true)] {
        if let (Some(values), Some(indices)) =
            (matches.get_many::<String>(id), matches.indices_of(id))
        {
            for (value, index) in values.zip(indices) {
                let step = if value.is_empty() {
                    EnvStep::File { path: None, nul }
                } else if !nul && value.contains('=') {
                    EnvStep::Assign(value.clone())
                } else {
                    EnvStep::File {
                        path: Some(value.clone()),
                        nul,
                    }
                };
                steps.push((index, step));
            }
        }
    }
    if let (Some(values), Some(indices)) = (
        matches.get_many::<String>("unset_env"),
        matches.indices_of("unset_env"),
    ) {
        for (value, index) in values.zip(indices) {
            steps.push((index, EnvStep::Unset(value.clone())));
        }
    }
    steps.sort_by_key(|(index, _)| *index);
    steps.into_iter().map(|(_, step)| step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().map(OsString::from)).unwrap() {
            Request::Run(o) => *o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_are_permuted_until_the_double_dash() {
        let o = run(&["-v", "img.sqfs", "-b", "/a:/b", "--", "ls", "-l", "-b"]);
        assert_eq!(o.image, "img.sqfs");
        assert_eq!(o.binds, ["/a:/b"]);
        assert_eq!(o.verbose, 1);
        assert_eq!(o.command, ["ls", "-l", "-b"]);
        // As with getopt: an option after the command is still ch-run's.
        let o = run(&["img", "echo", "-v", "x"]);
        assert_eq!(o.command, ["echo", "x"]);
        assert_eq!(o.verbose, 1);
        let o = run(&["--verb", "--", "img", "echo"]);
        assert_eq!((o.image.as_str(), o.verbose), ("img", 1));
        let e = parse(["img", "ls", "-l"].map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 64);
    }

    #[test]
    fn env_steps_keep_command_line_order() {
        let o = run(&[
            "--unset-env=A*",
            "--set-env=X=1",
            "--set-env",
            "--set-env0=f0",
            "--unset-env",
            "B",
            "--set-env=file",
            "img",
            "true",
        ]);
        assert_eq!(
            o.env_steps,
            [
                EnvStep::Unset("A*".into()),
                EnvStep::Assign("X=1".into()),
                EnvStep::File {
                    path: None,
                    nul: false
                },
                EnvStep::File {
                    path: Some("f0".into()),
                    nul: true
                },
                EnvStep::Unset("B".into()),
                EnvStep::File {
                    path: Some("file".into()),
                    nul: false
                },
            ]
        );
    }

    #[test]
    fn usage_errors_are_one_line_and_exit_64() {
        let e = parse(["--bogus", "img", "true"].map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(!e.message().contains('\n'), "{e}");
        let e = parse(["img"].map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        let e = parse(["--unset-env=", "img", "true"].map(OsString::from)).unwrap_err();
        assert_eq!(e.message(), "--unset-env: GLOB must have non-zero length");
    }

    #[test]
    fn write_fake_sizes_are_checked_as_tmpfs_reads_them() {
        for size in ["", "0", "64m", "1G", "50%", "2k%", "100000"] {
            assert_eq!(tmpfs_size(size.into()).unwrap(), size);
        }
        let msg = |size: &str| tmpfs_size(size.into()).unwrap_err().message().to_string();
        let expected = "(expected N, N followed by k, m, g, t, p or e, or N%)";
        assert_eq!(
            msg("abc"),
            format!("--write-fake: invalid size: abc: no digits found {expected}")
        );
        assert_eq!(
            msg("5mb"),
            format!(
                "--write-fake: invalid size: 5mb: extra characters after digits: mb {expected}"
            )
        );
        assert_eq!(
            msg("99999999999999999999"),
            format!("--write-fake: invalid size: 99999999999999999999: out of range {expected}")
        );
        assert!(run(&["--ch-ssh", "img", "true"]).ch_ssh);
        let e = parse(["-W=x", "img", "true"].map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 31);
    }

    #[test]
    fn join_options_imply_join_and_counts_are_numbers() {
        let msg = |args: &[&str]| {
            parse(args.iter().map(OsString::from))
                .unwrap_err()
                .message()
                .to_string()
        };
        assert_eq!(msg(&["-u", "abc", "i", "c"]), "--uid: no digits found");
        assert_eq!(
            msg(&["-u", "5x", "i", "c"]),
            "--uid: extra characters after digits"
        );
        assert_eq!(msg(&["-g", "99999999999", "i", "c"]), "--gid: out of range");
        assert_eq!(msg(&["--uid=-1", "i", "c"]), "--uid: must be non-negative");
        assert_eq!(run(&["-u", " +7", "i", "c"]).uid, Some(7));
        let o = run(&["--join-ct=4", "img", "true"]);
        assert!(o.join.enabled);
        assert_eq!(o.join.count, Some(4));
        assert!(parse(["--join-ct=x", "img", "true"].map(OsString::from)).is_err());
    }
}
