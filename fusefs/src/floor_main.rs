//! `squashfuse-rs-floor IMAGE MOUNTPOINT`: the FUSE floor of bench/efficiency.sh (see
//! `fusefs::floor`).

use std::process::ExitCode;

fn main() -> ExitCode {
    fusefs::one_heap();
    match fusefs::floor::run(fusefs::usage::parse(std::env::args_os())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("squashfuse-rs-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
