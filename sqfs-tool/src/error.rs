//! What the tool's commands can fail with. Every variant prints as one line: names from
//! the image are shown with their control characters escaped, so that a hostile name
//! cannot break the line or forge another.

use std::borrow::Cow;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image could not be read at `path` (a path inside the image or the destination).
    #[error("{path}: {source}")]
    Image { path: String, source: sqfs::Error },
    /// A file system call on `path` failed.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// An entry whose name is not one path component: it would write elsewhere than in
    /// its directory.
    #[error("{dir}: the image lists an entry named {name:?}, which is not a file name")]
    BadName { dir: String, name: String },
    /// An entry named like the one before it, or out of the sorted order every
    /// directory of a valid image has.
    #[error("{dir}: the image lists {name:?} twice or out of order")]
    Duplicate { dir: String, name: String },
    #[error("{path}: directory loop in the image")]
    Loop { path: String },
    #[error("{path}: the image's tree is deeper than {max} directories")]
    TooDeep { path: String, max: usize },
    #[error("{dir}: destination exists and is not empty (-f extracts into it)")]
    NotEmpty { dir: String },
    #[error("{path}: a directory is in the way of the image's {what}")]
    DirectoryInTheWay { path: String, what: &'static str },
    /// Another thread failed first; its error is the one reported.
    #[error("extraction stopped")]
    Stopped,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Bytes from the image as text for a message: invalid UTF-8 replaced, control
/// characters escaped.
pub fn show(bytes: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(bytes);
    if !text.chars().any(char::is_control) {
        return text;
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_names_on_one_line() {
        assert_eq!(show(b"plain/name"), "plain/name");
        assert_eq!(show(b"two\nlines"), "two\\nlines");
        assert_eq!(show(b"bad\xffutf8"), "bad\u{fffd}utf8");
    }
}
