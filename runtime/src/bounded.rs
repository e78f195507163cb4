//! Reading a whole file, but never more than a limit. What ch-run reads from an image (its
//! `/ch/environment`) or from a host file the user names (`--set-env=FILE`, which may be a
//! pipe or a device) is streamed in chunks and refused once it passes the limit: no buffer is
//! ever sized from what a file, or an image's inode, says its size is.

use std::io::Read;

use sqfs::{Archive, Inode};

/// The most ch-run reads of one file, and the most environment it builds. Linux passes a
/// program at most 6 MiB of arguments and environment together (3/4 of `_STK_LIM`, see
/// `bprm_stack_limits` in the kernel's fs/exec.c), so nothing bigger could reach the command;
/// 16 MiB leaves room for files that assign the same variables many times over.
pub const LIMIT: usize = 16 << 20;

/// [`LIMIT`] as messages say it.
pub const LIMIT_TEXT: &str = "16 MiB";

#[derive(Debug)]
pub enum Error {
    /// More than the limit.
    TooBig,
    Io(std::io::Error),
    Image(sqfs::Error),
}

impl Error {
    /// The text after `can't read: PATH: `.
    pub fn text(&self) -> String {
        match self {
            Error::TooBig => format!("File too large (more than {LIMIT_TEXT})"),
            Error::Io(e) => crate::failure::io_text(e),
            Error::Image(e) => e.to_string(),
        }
    }
}

/// Reads `source` to its end, or fails as soon as it has given more than `limit` bytes.
pub fn read_to_end(source: impl Read, limit: usize) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more".
    source
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::Io)?;
    if bytes.len() > limit {
        return Err(Error::TooBig);
    }
    Ok(bytes)
}

/// Reads a regular file of a SquashFS image, at most `limit` bytes, with the library's
/// bounded read (it refuses a file whose inode claims more before reading anything).
pub fn read_squash_file(archive: &Archive, inode: &Inode, limit: usize) -> Result<Vec<u8>, Error> {
    archive.read_file(inode, limit).map_err(|e| match e {
        sqfs::Error::TooBig { .. } => Error::TooBig,
        e => Error::Image(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_refuses_more() {
        assert_eq!(read_to_end(&b"12345"[..], 5).unwrap(), b"12345");
        assert!(matches!(read_to_end(&b"123456"[..], 5), Err(Error::TooBig)));
        // An endless source ends at the limit.
        let zeros = std::io::repeat(0);
        assert!(matches!(read_to_end(zeros, 1 << 20), Err(Error::TooBig)));
        assert_eq!(
            Error::TooBig.text(),
            "File too large (more than 16 MiB)".to_string()
        );
    }
}
