//! The `sqfs` command line: its definition (which the man page and shell completions are
//! generated from, see `docgen/`) and how a bad one is reported.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueHint};

#[derive(Parser)]
#[command(name = "sqfs", version, about = "Read SquashFS 4.0 images")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args)]
pub struct ImageArgs {
    /// The SquashFS image
    #[arg(value_hint = ValueHint::FilePath)]
    pub image: PathBuf,
    /// Byte offset of the SquashFS inside the file (without it, a SIF's primary partition)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the superblock, the codec and the table sizes
    Info {
        #[command(flatten)]
        image: ImageArgs,
    },
    /// List a directory (or one entry) of the image
    Ls {
        #[command(flatten)]
        image: ImageArgs,
        /// Long listing: mode, owner, group, size, mtime, name -> target
        #[arg(short = 'l')]
        long: bool,
        /// List subdirectories recursively, with full paths
        #[arg(short = 'R')]
        recursive: bool,
        /// Path inside the image
        #[arg(default_value = "/", value_hint = ValueHint::Other)]
        path: String,
    },
    /// Write files to standard output, following symlinks inside the image
    ///
    /// The files are written one after the other. A symlink's target is looked up in the
    /// image (an absolute one from the image's root), 40 symlinks at most per path.
    Cat {
        #[command(flatten)]
        image: ImageArgs,
        /// Paths inside the image
        #[arg(required = true, value_hint = ValueHint::Other)]
        paths: Vec<String>,
    },
    /// Extract the image or a subtree into DIR, like `unsquashfs -d DIR`
    ///
    /// A subtree keeps its path: /usr/bin is written to DIR/usr/bin. Nothing outside DIR
    /// is ever written, whatever the image holds.
    Extract {
        #[command(flatten)]
        image: ImageArgs,
        /// Destination directory (created; must be empty unless -f)
        #[arg(value_hint = ValueHint::DirPath)]
        dir: PathBuf,
        /// Path inside the image to extract
        #[arg(default_value = "/", value_hint = ValueHint::Other)]
        path: String,
        /// Decompressor threads (default: one per CPU); a walker and a writer run besides,
        /// as with unsquashfs -processors
        #[arg(short = 'p', long, value_parser = clap::value_parser!(u16).range(1..))]
        processors: Option<u16>,
        /// Extract into a DIR that has contents: an entry the image also has is replaced
        /// (a symlink there is removed, never followed), except a directory, which the
        /// image's directory fills (and the image's file there is an error)
        #[arg(short = 'f', long)]
        force: bool,
        /// Print nothing but errors and warnings (no progress bar, no summary)
        #[arg(short = 'q', long)]
        quiet: bool,
        /// No progress bar
        #[arg(short = 'n', long)]
        no_progress: bool,
    },
}

/// The command line's definition, for the man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses the command line (with the program name). `--help` and `--version` print and
/// exit 0; a bad command line is one line on stderr and exit 1, as every other `sqfs`
/// error (and as unsquashfs exits on bad usage).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Cli {
    Cli::try_parse_from(unsquashfs_spellings(args)).unwrap_or_else(|e| {
        if !e.use_stderr() {
            e.exit()
        }
        eprintln!("sqfs: error: {}", one_line(&e));
        std::process::exit(1)
    })
}

/// unsquashfs spells its long options with one dash; `sqfs extract` takes those users
/// know (before any `--`).
fn unsquashfs_spellings(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut after_dashes = false;
    args.into_iter()
        .map(|arg| {
            after_dashes |= arg == "--";
            match arg.to_str() {
                Some(a @ ("-no-progress" | "-quiet" | "-force" | "-processors"))
                    if !after_dashes =>
                {
                    OsString::from(format!("-{a}"))
                }
                _ => arg,
            }
        })
        .collect()
}

/// clap's error, which is several lines (the error, tips, the usage, a pointer to
/// `--help`), as one line: the error with what it lists, then the usage.
pub fn one_line(error: &clap::Error) -> String {
    if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // `sqfs` alone: clap would print the whole help on stderr.
        let names: Vec<String> = command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
            .map(|c| c.get_name().to_string())
            .collect();
        return format!(
            "a command is needed: {} (try 'sqfs --help')",
            names.join(", ")
        );
    }
    let text = error.to_string();
    let mut message = String::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if line.starts_with("For more information") {
            continue;
        } else if message.is_empty() {
            message = line.strip_prefix("error: ").unwrap_or(line).to_string();
        } else if message.ends_with(':') {
            message = format!("{message} {line}");
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            message = format!("{message}; {tip}");
        } else {
            message = format!("{message}, {line}");
        }
    }
    match usage {
        Some(usage) => format!("{message} (usage: {usage})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(args: &[&str]) -> String {
        let argv = std::iter::once("sqfs").chain(args.iter().copied());
        match Cli::try_parse_from(unsquashfs_spellings(argv.map(OsString::from))) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => {
                assert!(e.use_stderr(), "{e}");
                one_line(&e)
            }
        }
    }

    #[test]
    fn usage_errors_are_one_line_with_what_is_missing_and_the_usage() {
        let e = error(&["extract", "img"]);
        assert_eq!(
            e,
            "the following required arguments were not provided: <DIR> \
             (usage: sqfs extract <IMAGE> <DIR> [PATH])"
        );
        let e = error(&["extract", "-p", "0", "img", "dir"]);
        assert_eq!(
            e,
            "invalid value '0' for '--processors <PROCESSORS>': 0 is not in 1..=65535"
        );
        assert_eq!(
            error(&[]),
            "a command is needed: info, ls, cat, extract (try 'sqfs --help')"
        );
        let e = error(&["ls", "--offse", "1", "img"]);
        assert!(e.contains("'--offse'") && e.contains("'--offset'"), "{e}");
        for args in [
            &["frobnicate"][..],
            &["cat", "img"],
            &["info", "--bogus", "i"],
        ] {
            let e = error(args);
            assert!(
                !e.contains('\n') && e.contains("(usage: sqfs"),
                "{args:?}: {e}"
            );
        }
    }

    #[test]
    fn unsquashfs_spellings_are_taken_before_the_dashes() {
        let args = [
            "sqfs",
            "extract",
            "-processors",
            "2",
            "-quiet",
            "--",
            "-force",
        ];
        let spelled = unsquashfs_spellings(args.map(OsString::from));
        assert_eq!(
            spelled,
            [
                "sqfs",
                "extract",
                "--processors",
                "2",
                "--quiet",
                "--",
                "-force"
            ]
        );
    }
}
