//! `sqfs`: inspect, list, print and extract SquashFS images with the `sqfs` library.

use std::fs::File;
use std::process::ExitCode;

use sqfs::{Archive, OpenOptions};
use sqfs_tool::cli::{self, Cli, Command, ImageArgs};
use sqfs_tool::{cat, extract, info, ls, pack};

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
        Command::Pack(args) => {
            let epoch = std::env::var_os("SOURCE_DATE_EPOCH");
            let options =
                pack::Options::from_args(&args, epoch.as_deref()).map_err(|e| e.to_string())?;
            let pack = if args.tar { pack::pack_tar } else { pack::pack };
            let summary = pack(&args.source, &args.image, &options).map_err(|e| e.to_string())?;
            if !args.quiet {
                println!("{summary}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // A closed pipe (`sqfs cat … | head`) ends the program quietly, as cat's would.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(cli::parse(std::env::args_os())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("sqfs: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
