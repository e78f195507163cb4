//! `squashfuse-rs IMAGE MOUNTPOINT`: squashfuse_ll's interface on the `sqfs` library.

use std::process::ExitCode;

use fusefs::options::{Args, MountConfig};

fn main() -> ExitCode {
    fusefs::one_heap();
    match run(fusefs::usage::parse(std::env::args_os())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("squashfuse-rs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    fusefs::mount::run(MountConfig::from_args(args)?)?;
    Ok(())
}
