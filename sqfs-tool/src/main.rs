//! `sqfs`: inspect, list, print and extract SquashFS images with the `sqfs` library.

use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sqfs::{Archive, OpenOptions};
use sqfs_tool::{cat, extract, info, ls};

#[derive(Parser)]
#[command(name = "sqfs", version, about = "Read SquashFS 4.0 images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ImageArgs {
    /// The SquashFS image
    image: PathBuf,
    /// Byte offset of the SquashFS inside the file (without it, a SIF's primary partition)
    #[arg(long, default_value_t = 0)]
    offset: u64,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(default_value = "/")]
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
        #[arg(required = true)]
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
        dir: PathBuf,
        /// Path inside the image to extract
        #[arg(default_value = "/")]
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

fn open(args: &ImageArgs) -> Result<Archive, String> {
    let file = File::open(&args.image).map_err(|e| format!("{}: {e}", args.image.display()))?;
    let options = OpenOptions {
        offset: args.offset,
        ..OpenOptions::default()
    };
    Archive::open_file(file, &options).map_err(|e| format!("{}: {e}", args.image.display()))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Info { image } => info::run(&open(&image)?, &image.image),
        Command::Ls {
            image,
            long,
            recursive,
            path,
        } => ls::run(&open(&image)?, &path, long, recursive),
        Command::Cat { image, paths } => cat::run(&open(&image)?, &paths),
        Command::Extract {
            image,
            dir,
            path,
            processors,
            force,
            quiet,
            no_progress,
        } => {
            let options = extract::Options {
                force,
                processors: processors.map_or_else(
                    || std::thread::available_parallelism().map_or(1, |n| n.get()),
                    usize::from,
                ),
                progress: !quiet && !no_progress,
            };
            let summary = extract::extract(&open(&image)?, &path, &dir, &options)
                .map_err(|e| e.to_string())?;
            if summary.skipped_devices > 0 {
                eprintln!(
                    "sqfs: warning: {} device node(s) not created: that needs root",
                    summary.skipped_devices
                );
            }
            if !quiet {
                println!("{summary}");
            }
            Ok(())
        }
    }
}

/// unsquashfs spells its long options with one dash; `sqfs extract` takes those users
/// know (before any `--`).
fn unsquashfs_spellings(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut after_dashes = false;
    args.map(|arg| {
        after_dashes |= arg == "--";
        match arg.to_str() {
            Some(a @ ("-no-progress" | "-quiet" | "-force" | "-processors")) if !after_dashes => {
                OsString::from(format!("-{a}"))
            }
            _ => arg,
        }
    })
    .collect()
}

fn main() -> ExitCode {
    // A closed pipe (`sqfs cat … | head`) ends the program quietly, as cat's would.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse_from(unsquashfs_spellings(std::env::args_os()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sqfs: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
