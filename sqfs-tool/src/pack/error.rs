//! What packing can fail with. Every variant prints as one line naming the path it is
//! about (a source path, with its control characters escaped, or the image's).

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call on the source tree failed at `path`.
    #[error("{path}: {source}")]
    Source { path: String, source: io::Error },
    /// The writer refused an entry or failed on it.
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: sqfs::WriteError,
    },
    /// An entry was replaced by another (a different file or type) between being listed
    /// and being opened.
    #[error("{path}: changed while being packed ({what})")]
    Changed { path: String, what: &'static str },
    /// The image could not be created, written or put in place.
    #[error("{path}: {source}")]
    Image { path: String, source: io::Error },
    /// Something wrong with the options (one line saying what).
    #[error("{0}")]
    Options(String),
    /// Stopped by a signal; the temporary image is gone.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;
