//! `sqfs`: inspect, list, print and extract SquashFS images with the `sqfs` library.

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
    /// Write a file's contents to standard output
    Cat {
        #[command(flatten)]
        image: ImageArgs,
        /// Path inside the image
        path: String,
    },
    /// Extract the image (or a subtree) into DIR, like `unsquashfs -d DIR`
    Extract {
        #[command(flatten)]
        image: ImageArgs,
        /// Destination directory (created; must not exist or be empty)
        dir: PathBuf,
        /// Path inside the image to extract
        #[arg(default_value = "/")]
        path: String,
        /// Decompressor threads (default: one per CPU); a walker and a writer run besides,
        /// as with unsquashfs -processors
        #[arg(short = 'p', long)]
        processors: Option<usize>,
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
        Command::Cat { image, path } => cat::run(&open(&image)?, &path),
        Command::Extract {
            image,
            dir,
            path,
            processors,
        } => extract::run(&open(&image)?, &path, &dir, processors),
    }
}

fn main() -> ExitCode {
    // A closed pipe (`sqfs cat … | head`) ends the program quietly, as cat's would.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sqfs: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
