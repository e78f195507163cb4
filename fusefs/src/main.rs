//! `squashfuse-rs IMAGE MOUNTPOINT`: squashfuse_ll's interface on the `sqfs` library.

use std::process::ExitCode;

use clap::Parser;
use fusefs::options::{Args, MountConfig};

fn main() -> ExitCode {
    let result = MountConfig::from_args(Args::parse()).and_then(fusefs::mount::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("squashfuse-rs: {msg}");
            ExitCode::FAILURE
        }
    }
}
