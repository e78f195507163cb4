//! `docgen OUT`: writes the man pages of sqfs, squashfuse-rs and ch-run to `OUT/man1/` and
//! their bash, zsh and fish completions to `OUT/bash/`, `OUT/zsh/` and `OUT/fish/`, all made
//! from the command-line definitions in their crates (`sqfs_tool::cli`, `fusefs::options`,
//! `runtime::cli`). `scripts/install.sh` runs it and installs what it writes.

mod ch_run;
mod completions;
mod date;
mod page;
mod sqfs;
mod squashfuse;

use std::path::Path;
use std::process::ExitCode;

fn write_all(out: &Path, date: &str) -> std::io::Result<()> {
    let man = out.join("man1");
    std::fs::create_dir_all(&man)?;
    let mut pages = sqfs::pages(date);
    pages.push(squashfuse::page(date));
    pages.push(ch_run::page(date));
    for page in &pages {
        page.write_to(&man)?;
    }
    completions::write(
        out,
        vec![
            sqfs_tool::cli::command(),
            fusefs::options::command(),
            runtime::cli::command(),
        ],
    )
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [out] = args.as_slice() else {
        eprintln!("usage: docgen OUT");
        return ExitCode::from(2);
    };
    let date = match date::man_date() {
        Ok(date) => date,
        Err(e) => {
            eprintln!("docgen: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match write_all(Path::new(out), &date) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docgen: error: {}: {e}", Path::new(out).display());
            ExitCode::FAILURE
        }
    }
}
