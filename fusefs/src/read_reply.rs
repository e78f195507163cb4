//! READ replies written from the cached blocks themselves.
//!
//! fuser's data reply takes one slice, so a read that spans blocks was copied into one
//! buffer first: a copy of every byte of a sequential read, on top of the kernel's copy into
//! the page cache. Written here with one writev of the blocks' own bytes (holes from a
//! static run of zeros), the daemon copies nothing; as `dirplus`, to the /dev/fuse
//! descriptor the request came from.
//!
//! Layout (include/uapi/linux/fuse.h): `fuse_out_header` {len u32, error i32, unique u64},
//! then the bytes read. All native-endian.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::BorrowedFd;

use sqfs::Block;

/// What a hole reads as, in slices of at most this many bytes.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Slices a reply may be made of: fewer than the kernel takes in one writev (UIO_MAXIOV,
/// 1024), with room for the header and a hole's runs of zeros.
pub const MOST_PARTS: usize = 512;

enum Part {
    Bytes(Block, Range<usize>),
    Zeros(usize),
}

/// A reply to a READ, gathered from blocks.
#[derive(Default)]
pub struct Gathered {
    parts: Vec<Part>,
    len: usize,
}

impl Gathered {
    pub fn with_capacity(parts: usize) -> Self {
        Gathered {
            parts: Vec::with_capacity(parts),
            len: 0,
        }
    }

    /// Appends `block[range]` (the caller checked that it is in the block).
    pub fn bytes(&mut self, block: Block, range: Range<usize>) {
        self.len += range.len();
        self.parts.push(Part::Bytes(block, range));
    }

    /// Appends `n` zeros.
    pub fn zeros(&mut self, n: usize) {
        self.len += n;
        self.parts.push(Part::Zeros(n));
    }

    /// Answers request `unique` on `device`, the /dev/fuse descriptor it was read from.
    pub fn send(&self, device: BorrowedFd, unique: u64) -> io::Result<()> {
        let total = u32::try_from(16 + self.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "reply too long"))?;
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&total.to_ne_bytes());
        header[8..16].copy_from_slice(&unique.to_ne_bytes());
        let mut slices = Vec::with_capacity(self.parts.len() + 1);
        slices.push(IoSlice::new(&header));
        for part in &self.parts {
            match part {
                Part::Bytes(block, range) => slices.push(IoSlice::new(&block[range.clone()])),
                Part::Zeros(n) => {
                    let mut left = *n;
                    while left > 0 {
                        let take = left.min(ZEROS.len());
                        slices.push(IoSlice::new(&ZEROS[..take]));
                        left -= take;
                    }
                }
            }
        }
        // The kernel takes a reply in one write or not at all.
        nix::sys::uio::writev(device, &slices)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::sync::Arc;

    #[test]
    fn a_reply_is_the_header_then_the_parts_in_order() {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let a: Block = Arc::new((0..100u8).collect());
        let b: Block = Arc::new(vec![7; 10]);
        let mut reply = Gathered::with_capacity(3);
        reply.bytes(a.clone(), 90..100);
        reply.zeros(70_000);
        reply.bytes(b, 0..3);
        let sender = std::thread::spawn(move || reply.send(write_end.as_fd(), 0x1234));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut got).unwrap();
        sender.join().unwrap().unwrap();
        let len = 16 + 10 + 70_000 + 3;
        assert_eq!(got.len(), len);
        assert_eq!(
            u32::from_ne_bytes(got[0..4].try_into().unwrap()) as usize,
            len
        );
        assert_eq!(i32::from_ne_bytes(got[4..8].try_into().unwrap()), 0);
        assert_eq!(u64::from_ne_bytes(got[8..16].try_into().unwrap()), 0x1234);
        assert_eq!(&got[16..26], &a[90..100]);
        assert!(got[26..26 + 70_000].iter().all(|&x| x == 0));
        assert_eq!(&got[26 + 70_000..], &[7, 7, 7]);
    }
}
