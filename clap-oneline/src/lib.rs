//! A clap usage error as one line, for the binaries of this workspace (`sqfs`,
//! `squashfuse-rs`): a tool's error is one line on stderr, and clap's is several (the error,
//! tips, the usage, a pointer to `--help`).

/// The error with what it lists, then the usage: `MESSAGE (usage: USAGE)`.
pub fn one_line(error: &clap::Error) -> String {
    let text = error.to_string();
    let mut message = String::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if line.starts_with("For more information") {
            continue;
        } else if message.is_empty() {
            message = line.strip_prefix("error: ").unwrap_or(line).to_string();
        } else if message.ends_with(':') {
            message = format!("{message} {line}");
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            message = format!("{message}; {tip}");
        } else {
            message = format!("{message}, {line}");
        }
    }
    match usage {
        Some(usage) => format!("{message} (usage: {usage})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(name = "tool")]
    struct Args {
        #[arg(long)]
        level: u32,
        file: String,
    }

    fn error(args: &[&str]) -> String {
        let argv = std::iter::once("tool").chain(args.iter().copied());
        match Args::try_parse_from(argv) {
            Ok(a) => panic!("{args:?} parsed: {a:?}"),
            Err(e) => one_line(&e),
        }
    }

    #[test]
    fn a_usage_error_is_one_line_with_the_usage() {
        for args in [&["--nope", "f"][..], &[]] {
            let line = error(args);
            assert!(!line.contains('\n'), "{line}");
            assert!(
                line.ends_with("(usage: tool --level <LEVEL> <FILE>)"),
                "{line}"
            );
        }
        assert!(error(&["--nope", "f"]).starts_with("unexpected argument '--nope'"));
        assert!(error(&[]).contains("<FILE>"));
        assert_eq!(
            error(&["--level", "x", "f"]),
            "invalid value 'x' for '--level <LEVEL>': invalid digit found in string"
        );
    }
}
