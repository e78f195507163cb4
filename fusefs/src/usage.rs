//! How `squashfuse-rs` reports a command line it cannot take: one line on stderr and exit 1,
//! as every other failure of the command (squashfuse_ll's codes vary, 1, 254 or 255, all
//! non-zero). `--help` and `--version` print on stdout and exit 0.

use std::ffi::OsString;

use clap::Parser;
use clap_oneline::one_line;

use crate::options::Args;

/// Parses the command line (with the program name), or exits as the module says.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Args {
    Args::try_parse_from(args).unwrap_or_else(|e| {
        if !e.use_stderr() {
            e.exit()
        }
        eprintln!("squashfuse-rs: {}", one_line(&e));
        std::process::exit(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(args: &[&str]) -> String {
        let argv = std::iter::once("squashfuse-rs").chain(args.iter().copied());
        match Args::try_parse_from(argv) {
            Ok(a) => panic!("{args:?} parsed: {a:?}"),
            Err(e) => {
                assert!(e.use_stderr(), "{e}");
                one_line(&e)
            }
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        assert_eq!(
            error(&[]),
            "the following required arguments were not provided: <IMAGE>, <MOUNTPOINT> \
             (usage: squashfuse-rs <IMAGE> <MOUNTPOINT>)"
        );
        assert_eq!(
            error(&["-x", "i", "m"]),
            "unexpected argument '-x' found; to pass '-x' as a value, use '-- -x' \
             (usage: squashfuse-rs [OPTIONS] <IMAGE> <MOUNTPOINT>)"
        );
        assert_eq!(
            error(&["i", "m", "-o"]),
            "a value is required for '-o <OPT[,OPT...]>' but none was supplied"
        );
    }
}
