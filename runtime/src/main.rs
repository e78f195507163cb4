//! `ch-run [OPTION…] IMAGE [--] CMD [ARG…]`.

use runtime::cli::{self, Request};
use runtime::failure::{say, Failure};
use runtime::{plan, waiter};

/// What `--feature` answers yes to.
const FEATURES: [&str; 3] = ["extglob", "overlayfs", "squash"];

fn run() -> Result<i32, Failure> {
    match cli::parse(std::env::args_os().skip(1))? {
        Request::Print(text) => {
            print!("{text}");
            Ok(0)
        }
        Request::Feature(name) if FEATURES.contains(&name.as_str()) => Ok(0),
        Request::Feature(name) => Err(Failure::Runtime(format!("unknown feature: {name}"))),
        Request::Run(options) => waiter::run(plan::build(&options)?),
    }
}

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(failure) => {
            say("error", failure.message());
            failure.exit_code()
        }
    };
    std::process::exit(code)
}
