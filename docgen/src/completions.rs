//! Shell completions from the command-line definitions, named where each shell looks for
//! them: `bash/NAME` (bash-completion loads it when NAME is first completed), `zsh/_NAME`
//! (a directory of `$fpath`), `fish/NAME.fish` (fish's vendor_completions.d).

use std::io;
use std::path::Path;

use clap_complete::{Generator, Shell};

pub fn write(out: &Path, commands: Vec<clap::Command>) -> io::Result<()> {
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join(shell.to_string());
        std::fs::create_dir_all(&dir)?;
        for mut cmd in commands.iter().cloned() {
            let name = cmd.get_name().to_string();
            let file = match shell {
                Shell::Bash => name.clone(),
                other => other.file_name(&name),
            };
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut script);
            if shell == Shell::Fish {
                script = fish_quote_shorts(&String::from_utf8_lossy(&script)).into_bytes();
            }
            std::fs::write(dir.join(file), script)?;
        }
    }
    Ok(())
}

/// clap_complete writes a short option bare (`-s ?`), and fish (3.6) takes ch-run's `-?`
/// there as a glob that matches nothing: sourcing the file prints an error and loses the
/// option. Quoted, it is the character itself.
fn fish_quote_shorts(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    for line in script.split_inclusive('\n') {
        let mut rest = line;
        while let Some(at) = rest.find(" -s ") {
            let (before, after) = rest.split_at(at + 4);
            out.push_str(before);
            let mut chars = after.chars();
            match (chars.next(), chars.next()) {
                (Some(c), next)
                    if !c.is_ascii_alphanumeric() && matches!(next, None | Some(' ' | '\n')) =>
                {
                    out.push_str(&format!("'{c}'"));
                    rest = &after[c.len_utf8()..];
                }
                _ => rest = after,
            }
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fish_quote_shorts;

    #[test]
    fn fish_short_options_that_are_globs_are_quoted() {
        assert_eq!(
            fish_quote_shorts(
                "complete -c ch-run -s ? -l help -d 'x'\ncomplete -c x -s b -l bind\n"
            ),
            "complete -c ch-run -s '?' -l help -d 'x'\ncomplete -c x -s b -l bind\n"
        );
    }
}
