//! A man page: the sections clap_mangen renders from a command's definition (title, name,
//! synopsis, options, subcommands) and the prose sections it cannot know (description,
//! exit status, environment, files, examples, see also), written here in a small markup:
//! text between backticks is set in bold (commands, options, file names, variables).

use std::io::{self, Write};
use std::path::Path;

use clap_mangen::roff::{bold, roman, Inline, Roff};
use clap_mangen::Man;

/// A piece of prose.
pub enum Block {
    /// A paragraph.
    Para(String),
    /// A term (in bold) and what it means, as in an options list.
    Item(String, String),
    /// A subsection heading.
    Sub(String),
    /// What an example does, then its command line, set as typed.
    Example(String, String),
}

pub fn para(text: impl Into<String>) -> Block {
    Block::Para(text.into())
}

pub fn item(term: impl Into<String>, text: impl Into<String>) -> Block {
    Block::Item(term.into(), text.into())
}

pub fn sub(title: impl Into<String>) -> Block {
    Block::Sub(title.into())
}

pub fn example(what: impl Into<String>, command: impl Into<String>) -> Block {
    Block::Example(what.into(), command.into())
}

/// How the SYNOPSIS is made.
pub enum Synopsis {
    /// clap_mangen's, from the arguments (or the overridden usage).
    Clap,
    /// One line per form: the command's name in bold, then the rest.
    Forms(Vec<(String, String)>),
}

pub struct Page {
    /// The command, built (its subcommands know their full names).
    pub cmd: clap::Command,
    pub man: Man,
    pub file_name: String,
    pub synopsis: Synopsis,
    /// Start DESCRIPTION with the command's own (long) about text.
    pub clap_description: bool,
    pub description: Vec<Block>,
    /// The sections after OPTIONS (and the subcommands), in order.
    pub sections: Vec<(&'static str, Vec<Block>)>,
}

impl Page {
    /// A page for `cmd` with the project's title line: the name in capitals, section 1,
    /// the date, and `source` (the program and its version).
    pub fn new(mut cmd: clap::Command, date: &str, source: &str) -> Page {
        cmd.build();
        let name = cmd
            .get_display_name()
            .unwrap_or_else(|| cmd.get_name())
            .to_string();
        let man = Man::new(cmd.clone())
            .title(name.to_uppercase())
            .date(date)
            .source(source)
            .manual("User Commands");
        Page {
            cmd,
            file_name: man.get_filename(),
            man,
            synopsis: Synopsis::Clap,
            clap_description: false,
            description: Vec::new(),
            sections: Vec::new(),
        }
    }

    pub fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let cmd = &self.cmd;
        self.man.render_title(w)?;
        self.man.render_name_section(w)?;
        match &self.synopsis {
            Synopsis::Clap => self.man.render_synopsis_section(w)?,
            Synopsis::Forms(forms) => {
                let mut roff = Roff::default();
                roff.control("SH", ["SYNOPSIS"]);
                for (i, (name, rest)) in forms.iter().enumerate() {
                    if i > 0 {
                        roff.control("br", []);
                    }
                    roff.text([bold(name.as_str()), roman(format!(" {rest}"))]);
                }
                roff.to_writer(w)?;
            }
        }
        let mut roff = Roff::default();
        if self.clap_description {
            self.man.render_description_section(w)?;
            if !self.description.is_empty() {
                roff.control("PP", []);
            }
        } else {
            roff.control("SH", ["DESCRIPTION"]);
        }
        blocks(&mut roff, &self.description);
        roff.to_writer(w)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            self.man.render_options_section(w)?;
        }
        if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
            self.man.render_subcommands_section(w)?;
        }
        let mut roff = Roff::default();
        for (title, body) in &self.sections {
            roff.control("SH", [*title]);
            blocks(&mut roff, body);
        }
        roff.to_writer(w)
    }

    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        let mut text = Vec::new();
        self.render(&mut text)?;
        std::fs::write(dir.join(&self.file_name), text)
    }
}

/// Text with `bold` spans.
fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

fn blocks(roff: &mut Roff, blocks: &[Block]) {
    for (i, block) in blocks.iter().enumerate() {
        match block {
            Block::Para(text) => {
                if i > 0 {
                    roff.control("PP", []);
                }
                roff.text(inline(text));
            }
            Block::Item(term, text) => {
                roff.control("TP", []);
                roff.text([bold(term.as_str())]);
                roff.text(inline(text));
            }
            Block::Sub(title) => {
                roff.control("SS", [title.as_str()]);
            }
            Block::Example(what, command) => {
                if i > 0 {
                    roff.control("PP", []);
                }
                roff.text(inline(what));
                roff.control("PP", []);
                roff.control("RS", ["4"]);
                roff.control("nf", []);
                for line in command.lines() {
                    roff.text([roman(line)]);
                }
                roff.control("fi", []);
                roff.control("RE", []);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_make_bold_spans() {
        assert_eq!(
            inline("run `sqfs ls` on `IMAGE`."),
            vec![
                roman("run "),
                bold("sqfs ls"),
                roman(" on "),
                bold("IMAGE"),
                roman(".")
            ]
        );
    }
}
