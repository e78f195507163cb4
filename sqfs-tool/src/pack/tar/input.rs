//! The tar stream `sqfs pack --tar` reads: a file or standard input, decompressed when it
//! starts with gzip's, zstd's or xz's magic, counted (for the progress bar) and metered:
//! between two members the tar crate may read only a bounded number of bytes, so that a
//! long-name, PAX or sparse-map header of any declared size cannot make it hold more than
//! that in memory (it reads those whole).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

/// What the tar crate may read while it looks for the next member: the headers before it
/// (long names, PAX records, sparse maps) and the padding after the member before.
pub const HEADER_BUDGET: u64 = 16 << 20;

/// The most memory a decoder may take (xz's dictionary is declared by the stream).
const DECODER_MEMORY: u64 = 256 << 20;

/// Bytes the tar crate may still read (None: no limit, a member's content is being read),
/// the position in the tar stream, and the bytes read since the limit was set (the
/// headers before a member, which `pax.rs` reads again).
#[derive(Clone, Default)]
pub struct Budget {
    left: Rc<Cell<Option<u64>>>,
    position: Rc<Cell<u64>>,
    start: Rc<Cell<u64>>,
    recorded: Rc<RefCell<Vec<u8>>>,
}

impl Budget {
    /// From now on, at most `bytes` may be read, and they are recorded.
    pub fn limit(&self, bytes: u64) {
        self.left.set(Some(bytes));
        self.start.set(self.position.get());
        self.recorded.borrow_mut().clear();
    }

    /// No limit (and no recording) from now on.
    pub fn lift(&self) {
        self.left.set(None);
    }

    /// The tar stream's position where the recording starts, and the bytes recorded.
    pub fn recorded(&self) -> (u64, std::cell::Ref<'_, Vec<u8>>) {
        (self.start.get(), self.recorded.borrow())
    }
}

/// Reads within a [`Budget`].
struct Metered<R> {
    inner: R,
    budget: Budget,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = &self.budget;
        let Some(left) = budget.left.get() else {
            let n = self.inner.read(buf)?;
            budget.position.set(budget.position.get() + n as u64);
            return Ok(n);
        };
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the headers of one member (long names, PAX records, sparse map) hold more \
                     than {} MiB",
                    HEADER_BUDGET >> 20
                ),
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        budget.left.set(Some(left - n as u64));
        budget.position.set(budget.position.get() + n as u64);
        budget.recorded.borrow_mut().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Counts the bytes read from the source (before decompression).
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// How the tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
    Xz,
}

impl Codec {
    /// The codec whose magic `head` (the stream's first bytes) starts with.
    fn sniff(head: &[u8]) -> io::Result<Codec> {
        let refuse = |what: &str| {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a {what}-compressed stream: decompress it into `sqfs pack --tar -` \
                     (gzip, zstd and xz are read as they are)"
                ),
            ))
        };
        Ok(match head {
            [0x1f, 0x8b, ..] => Codec::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Codec::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Codec::Xz,
            [b'B', b'Z', b'h', ..] => return refuse("bzip2"),
            [0x04, 0x22, 0x4d, 0x18, ..] => return refuse("lz4"),
            [0x89, b'L', b'Z', b'O', ..] => return refuse("lzop"),
            _ => Codec::None,
        })
    }
}

/// An opened tar stream.
pub struct Input {
    /// The tar stream, decompressed and metered.
    pub reader: Box<dyn Read>,
    pub budget: Budget,
    /// Bytes read from the source so far.
    pub consumed: Rc<Cell<u64>>,
    /// The source's length, if it is a regular file.
    pub len: Option<u64>,
}

/// Opens `source` (`-`: standard input) and sees how it is compressed.
pub fn open(source: &Path) -> io::Result<Input> {
    let (raw, len): (Box<dyn Read>, Option<u64>) = if source.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(source)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let len = meta.is_file().then_some(meta.len());
        (Box::new(file), len)
    };
    let consumed = Rc::new(Cell::new(0));
    let mut counted = Counted {
        inner: raw,
        count: consumed.clone(),
    };
    // The magic, read whole even from a pipe that delivers it in pieces, then put back.
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match counted.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let codec = Codec::sniff(&head[..got])?;
    let whole = BufReader::with_capacity(
        1 << 16,
        io::Cursor::new(head[..got].to_vec()).chain(counted),
    );
    let tar: Box<dyn Read> = match codec {
        Codec::None => Box::new(whole),
        Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(whole)?),
        Codec::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                DECODER_MEMORY,
                liblzma::stream::CONCATENATED,
            )
            .map_err(io::Error::other)?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(whole, stream))
        }
    };
    let budget = Budget::default();
    Ok(Input {
        reader: Box::new(Metered {
            inner: tar,
            budget: budget.clone(),
        }),
        budget,
        consumed,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_stops_reads_past_it_and_says_so() {
        let budget = Budget::default();
        let mut r = Metered {
            inner: io::repeat(7),
            budget: budget.clone(),
        };
        let mut buf = [0u8; 100];
        budget.limit(150);
        assert_eq!(r.read(&mut buf).unwrap(), 100);
        assert_eq!(r.read(&mut buf).unwrap(), 50);
        let e = r.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("more than 16 MiB"), "{e}");
        assert_eq!(budget.recorded().0, 0);
        assert_eq!(budget.recorded().1.len(), 150);
        budget.lift();
        assert_eq!(r.read(&mut buf).unwrap(), 100);
        budget.limit(10);
        assert_eq!(r.read(&mut buf).unwrap(), 10);
        assert_eq!(budget.recorded().0, 250);
        assert_eq!(*budget.recorded().1, [7; 10]);
    }

    #[test]
    fn codecs_by_magic() {
        assert_eq!(Codec::sniff(b"\x1f\x8b\x08\0\0\0").unwrap(), Codec::Gzip);
        assert_eq!(Codec::sniff(b"\x28\xb5\x2f\xfd\0\0").unwrap(), Codec::Zstd);
        assert_eq!(Codec::sniff(b"\xfd7zXZ\0").unwrap(), Codec::Xz);
        assert_eq!(Codec::sniff(b"./a\0\0\0").unwrap(), Codec::None);
        assert_eq!(Codec::sniff(b"").unwrap(), Codec::None);
        assert!(Codec::sniff(b"BZh91A").is_err());
    }
}
