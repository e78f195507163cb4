//! The `sqfs` command line: its definition (which the man page and shell completions are
//! generated from, see `docgen/`) and how a bad one is reported.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueHint};

#[derive(Parser)]
#[command(name = "sqfs", version, about = "Read and write SquashFS 4.0 images")]
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
    /// Pack a directory tree into a new image, as mksquashfs does
    ///
    /// DIR's entries become the image's root directory, which has DIR's own mode, owners,
    /// time and extended attributes. IMAGE is replaced once the new image is complete.
    /// mksquashfs's option names are taken with one dash as well (`-comp zstd`).
    Pack(PackArgs),
}

/// `sqfs pack`'s arguments, under mksquashfs's names.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The directory to pack (with --tar: the tar archive, - for standard input)
    #[arg(value_name = "DIR", value_hint = ValueHint::AnyPath)]
    pub source: PathBuf,
    /// The image to write
    #[arg(value_name = "IMAGE", value_hint = ValueHint::FilePath)]
    pub image: PathBuf,
    /// DIR is a tar archive (plain, or compressed with gzip, zstd or xz; - reads standard
    /// input), packed as tar2sqfs packs it, without unpacking it to disk
    #[arg(long = "tar")]
    pub tar: bool,
    /// Compressor: gzip, xz, zstd, lz4 or lzo
    #[arg(long = "comp", value_name = "COMP", default_value = "gzip",
          value_parser = ["gzip", "xz", "zstd", "lz4", "lzo"], hide_possible_values = true)]
    pub comp: String,
    /// Compression level: gzip 1-9 (default 9), zstd 1-22 (default: libzstd's 15, with a
    /// shorter search up to 256K blocks, searchLog 3 and targetLength 24, and level 9 for
    /// blocks that level 1 shrinks below a quarter; 15 given is libzstd's 15 for every
    /// block), xz 0-9 (6), lz4 1-12 with -Xhc (9)
    #[arg(
        long = "Xcompression-level",
        value_name = "LEVEL",
        allow_negative_numbers = true
    )]
    pub level: Option<i32>,
    /// xz: BCJ filters to try on each block, comma-separated (x86, powerpc, ia64, arm,
    /// armthumb, sparc, arm64, riscv); the smallest result is kept
    #[arg(long = "Xbcj", value_name = "FILTERS")]
    pub xz_bcj: Option<String>,
    /// lz4: high-compression mode
    #[arg(long = "Xhc")]
    pub lz4_hc: bool,
    /// Block size: a power of two from 4K to 1M (bytes, or with K or M)
    #[arg(
        short = 'b',
        long = "block-size",
        value_name = "SIZE",
        default_value = "128K"
    )]
    pub block_size: String,
    /// Compressor threads (default: one per CPU); a reader and a writer run besides
    #[arg(short = 'p', long = "processors", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub processors: Option<u16>,
    /// Every entry owned by root (uid and gid 0)
    #[arg(long = "all-root", visible_alias = "root-owned")]
    pub all_root: bool,
    /// Every entry owned by this user (a name or a number)
    #[arg(long = "force-uid", value_name = "USER")]
    pub force_uid: Option<String>,
    /// Every entry in this group (a name or a number)
    #[arg(long = "force-gid", value_name = "GROUP")]
    pub force_gid: Option<String>,
    /// Store no extended attributes
    #[arg(long = "no-xattrs")]
    pub no_xattrs: bool,
    /// Store no fragments: every file's last block is a block of its own
    #[arg(long = "no-fragments", conflicts_with = "always_use_fragments")]
    pub no_fragments: bool,
    /// Put the tails of files larger than a block into fragments too
    #[arg(long = "always-use-fragments", visible_alias = "tailends")]
    pub always_use_fragments: bool,
    /// Store a file whose content equals an earlier one's again, not as the earlier one
    #[arg(long = "no-duplicates")]
    pub no_duplicates: bool,
    /// Write no export table (the image cannot be exported over NFS)
    #[arg(long = "no-exports")]
    pub no_exports: bool,
    /// Leave out these paths (relative to DIR, or absolute paths inside it) and what is
    /// under them
    #[arg(short = 'e', long = "exclude", value_name = "PATH", num_args = 1..,
          value_hint = ValueHint::AnyPath)]
    pub exclude: Vec<PathBuf>,
    /// Leave out the paths listed in FILE, one per line
    #[arg(long = "ef", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub exclude_file: Vec<PathBuf>,
    /// Read excludes as shell wildcards (`*`, `?`, `[..]`, `@(a|b)`, …), one per directory
    /// level from DIR; a pattern starting with "... " matches at any depth
    #[arg(long = "wildcards", conflicts_with = "regex")]
    pub wildcards: bool,
    /// Read excludes as POSIX extended regular expressions, one per directory level from
    /// DIR; a pattern starting with "... " matches at any depth
    #[arg(long = "regex")]
    pub regex: bool,
    /// The image's creation time, in seconds since the epoch (default: SOURCE_DATE_EPOCH,
    /// else now)
    #[arg(long = "mkfs-time", value_name = "SECONDS")]
    pub mkfs_time: Option<u32>,
    /// Every entry's modification time, in seconds since the epoch
    #[arg(long = "all-time", value_name = "SECONDS")]
    pub all_time: Option<u32>,
    /// Print nothing but errors and warnings (no progress bar, no summary)
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// No progress bar
    #[arg(long = "no-progress")]
    pub no_progress: bool,
    /// Accepted for mksquashfs's sake: the image is always made anew, never appended to
    #[arg(long = "noappend", hide = true)]
    pub noappend: bool,
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

/// The long options unsquashfs (`sqfs extract`) and mksquashfs (`sqfs pack`) spell with
/// one dash, which clap would read as short options run together.
const ONE_DASH_LONG: &[&str] = &[
    "-no-progress",
    "-quiet",
    "-force",
    "-processors",
    "-comp",
    "-Xcompression-level",
    "-Xbcj",
    "-Xhc",
    "-all-root",
    "-root-owned",
    "-force-uid",
    "-force-gid",
    "-no-xattrs",
    "-no-fragments",
    "-always-use-fragments",
    "-tailends",
    "-no-duplicates",
    "-no-exports",
    "-ef",
    "-wildcards",
    "-regex",
    "-mkfs-time",
    "-all-time",
    "-noappend",
    "-tar",
];

/// unsquashfs and mksquashfs spell their long options with one dash; `sqfs extract` and
/// `sqfs pack` take those users know (before any `--`).
fn unsquashfs_spellings(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut after_dashes = false;
    args.into_iter()
        .map(|arg| {
            after_dashes |= arg == "--";
            match arg.to_str() {
                Some(a) if !after_dashes && ONE_DASH_LONG.contains(&a) => {
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
    clap_oneline::one_line(error)
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
            "a command is needed: info, ls, cat, extract, pack (try 'sqfs --help')"
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
