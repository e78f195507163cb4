//! A file's block list as the writer keeps it until the inode table is written: the size
//! words of its data blocks (from the pipeline) and its holes as runs, so that a sparse
//! file costs memory for the data it holds, not for its length (a 1 TiB file of holes at
//! 4 KiB blocks is 268 million words: 1 GiB as words, 16 bytes as a run). The words of
//! the holes are only made when the inode is written, a chunk at a time.

use crate::metadata::MetaWriter;
use crate::reader::DataBlock;
use crate::Result;

/// `count` holes in a row, the first at block `first` of its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HoleRun {
    pub first: u64,
    pub count: u64,
}

/// A file's hole runs, in block order, adjacent ones merged. Between two runs there is at
/// least one data block, so there are never more runs than data blocks plus one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct HoleRuns(Vec<HoleRun>);

impl HoleRuns {
    /// Adds `count` holes from block `first` on (after every hole and block added before).
    pub(super) fn add(&mut self, first: u64, count: u64) {
        match self.0.last_mut() {
            Some(last) if last.first + last.count == first => last.count += count,
            _ => self.0.push(HoleRun { first, count }),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Holes in all.
    #[cfg(test)]
    pub(super) fn count(&self) -> u64 {
        self.0.iter().map(|r| r.count).sum()
    }
}

/// A stretch of a block list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment<'a> {
    /// Data blocks' words, as the pipeline placed them.
    Data(&'a [u32]),
    /// This many holes.
    Holes(u64),
}

/// The block list of a file whose data blocks have `words` and whose holes are `holes`,
/// in order.
pub(super) fn segments<'a>(
    words: &'a [u32],
    holes: &'a HoleRuns,
) -> impl Iterator<Item = Segment<'a>> + 'a {
    let mut runs = holes.0.iter();
    let mut next_run = runs.next();
    // The index of the next block, and how many data words are used.
    let (mut block, mut used) = (0u64, 0usize);
    std::iter::from_fn(move || {
        if let Some(run) = next_run.filter(|r| r.first == block) {
            next_run = runs.next();
            block += run.count;
            return Some(Segment::Holes(run.count));
        }
        let rest = &words[used..];
        let len = match next_run {
            Some(run) => rest.len().min((run.first - block) as usize),
            None => rest.len(),
        };
        if len == 0 {
            return None;
        }
        used += len;
        block += len as u64;
        Some(Segment::Data(&rest[..len]))
    })
}

/// Writes the block list of [`segments`] to the inode table, holes a chunk of words at a
/// time.
pub(super) fn write(out: &mut MetaWriter, words: &[u32], holes: &HoleRuns) -> Result<()> {
    const CHUNK: usize = 2048;
    let zeros = [DataBlock::HOLE.word().to_le_bytes(); CHUNK];
    let mut bytes = Vec::with_capacity(4 * CHUNK);
    for segment in segments(words, holes) {
        match segment {
            Segment::Data(words) => {
                for chunk in words.chunks(CHUNK) {
                    bytes.clear();
                    chunk.iter().for_each(|w| bytes.extend(w.to_le_bytes()));
                    out.write(&bytes)?;
                }
            }
            Segment::Holes(mut count) => {
                while count > 0 {
                    let n = count.min(CHUNK as u64);
                    out.write(zeros[..n as usize].as_flattened())?;
                    count -= n;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(list: &[(u64, u64)]) -> HoleRuns {
        let mut holes = HoleRuns::default();
        for &(first, count) in list {
            holes.add(first, count);
        }
        holes
    }

    #[test]
    fn holes_and_words_interleave_in_block_order() {
        let words = [10, 11, 12, 13];
        // Blocks: hole, hole, 10, hole, 11, 12, hole x3, 13, hole.
        let holes = runs(&[(0, 1), (1, 1), (3, 1), (6, 3), (10, 1)]);
        assert_eq!(holes.0.len(), 4, "adjacent runs merge: {holes:?}");
        let got: Vec<Segment> = segments(&words, &holes).collect();
        assert_eq!(
            got,
            [
                Segment::Holes(2),
                Segment::Data(&[10]),
                Segment::Holes(1),
                Segment::Data(&[11, 12]),
                Segment::Holes(3),
                Segment::Data(&[13]),
                Segment::Holes(1),
            ]
        );
        assert_eq!(holes.count(), 7);
        assert_eq!(
            segments(&words, &HoleRuns::default()).collect::<Vec<_>>(),
            [Segment::Data(&words)]
        );
        assert_eq!(segments(&[], &HoleRuns::default()).count(), 0);
    }

    /// Past 2^32 holes (a 16 TiB file of holes at 4 KiB blocks), the count is whole: a
    /// u32 counter wrapped there and lost the runs' words.
    #[test]
    fn a_run_of_more_than_four_billion_holes_keeps_its_count() {
        let past = u64::from(u32::MAX) + 2;
        let mut holes = HoleRuns::default();
        // As pass() finds them: a run up to where the source's data starts, then more.
        holes.add(0, u64::from(u32::MAX));
        holes.add(u64::from(u32::MAX), 2);
        holes.add(past + 1, past);
        assert_eq!(holes.count(), 2 * past);
        let got: Vec<Segment> = segments(&[7], &holes).collect();
        assert_eq!(
            got,
            [
                Segment::Holes(past),
                Segment::Data(&[7]),
                Segment::Holes(past)
            ]
        );
    }
}
