//! `squashfuse-rs IMAGE MOUNTPOINT`: squashfuse_ll's interface on the `sqfs` library.

use std::process::ExitCode;

use fusefs::options::MountConfig;

fn main() -> ExitCode {
    let result = MountConfig::from_args(fusefs::usage::parse(std::env::args_os()))
        .and_then(fusefs::mount::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("squashfuse-rs: {msg}");
            ExitCode::FAILURE
        }
    }
}
