//! What the supervisor tells the waiting `ch-run` process over their pipe, one message per
//! line: `P<pid>` (the command started), `S<wait status>` (it ended), `E<code> <message>`
//! (setup failed; exit with code), `I<message>` (a line to print at `-v`), `W<message>` (a
//! warning, printed unless `-q`).

use std::io::{BufRead, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Started(i32),
    Ended(i32),
    Failed(i32, String),
    Info(String),
    Warning(String),
}

impl Message {
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        // Messages are single lines: a newline inside one would split it.
        let line = match self {
            Message::Started(pid) => format!("P{pid}"),
            Message::Ended(status) => format!("S{status}"),
            Message::Failed(code, msg) => format!("E{code} {}", msg.replace('\n', " ")),
            Message::Info(msg) => format!("I{}", msg.replace('\n', " ")),
            Message::Warning(msg) => format!("W{}", msg.replace('\n', " ")),
        };
        out.write_all(format!("{line}\n").as_bytes())?;
        out.flush()
    }

    /// Reads the next message; None at end of input (or on a line that makes no sense).
    pub fn read_from(input: &mut impl BufRead) -> Option<Message> {
        let mut line = String::new();
        if input.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let (kind, rest) = line.split_at(line.char_indices().nth(1).map_or(line.len(), |(i, _)| i));
        match kind {
            "P" => rest.parse().ok().map(Message::Started),
            "S" => rest.parse().ok().map(Message::Ended),
            "E" => {
                let (code, msg) = rest.split_once(' ')?;
                Some(Message::Failed(code.parse().ok()?, msg.to_string()))
            }
            "I" => Some(Message::Info(rest.to_string())),
            "W" => Some(Message::Warning(rest.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Message::Started(42),
            Message::Info("newroot: /x".into()),
            Message::Warning("join: not using /tmp/x: owner uid 7".into()),
            Message::Failed(31, "can't bind: source not found: /a b".into()),
            Message::Ended(0x0f00),
        ];
        let mut buf = Vec::new();
        for m in &msgs {
            m.write_to(&mut buf).unwrap();
        }
        let mut input = std::io::Cursor::new(buf);
        for m in &msgs {
            assert_eq!(Message::read_from(&mut input).as_ref(), Some(m));
        }
        assert_eq!(Message::read_from(&mut input), None);
    }
}
