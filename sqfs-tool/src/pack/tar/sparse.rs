//! GNU tar's sparse files in PAX archives (`tar --sparse --format=posix`, GNU tar's own
//! documentation of its formats, "Storing Sparse Files"): the member holds only the data
//! chunks of the file, and PAX records (formats 0.0 and 0.1) or a map at the start of the
//! member's data (format 1.0) say where each chunk lies; the rest is holes. The old GNU
//! format's sparse members (type `S`) are expanded by the tar crate itself.
//!
//! Every chunk is checked to lie after the one before and inside the file, and the
//! chunks' lengths to add up to the data stored, so a hostile map cannot make the reader
//! hand out more or other bytes than the member holds.

use std::io::{self, Read};

/// Chunks in one map, at most: 16 MiB of them in memory.
const MAX_CHUNKS: usize = 1 << 20;

/// What a member's PAX records say of its sparseness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparse {
    /// The file's real name (format 1.0 stores it apart from the header's made-up one).
    pub name: Option<Vec<u8>>,
    /// The file's size, holes included.
    pub size: u64,
    /// The data chunks as (offset, length), or None when the map leads the data (1.0).
    pub map: Option<Vec<(u64, u64)>>,
}

fn number(value: &[u8], what: &str) -> Result<u64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("a sparse file's {what} that is not a number"))
}

/// The sparseness `records` (the member's PAX records, in order) describe, if any.
pub fn from_pax(records: &[(&[u8], &[u8])]) -> Result<Option<Sparse>, String> {
    let get = |key: &[u8]| records.iter().rev().find(|(k, _)| *k == key).map(|r| r.1);
    if !records.iter().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
        return Ok(None);
    }
    let major = get(b"GNU.sparse.major")
        .map(|v| number(v, "format"))
        .transpose()?;
    let minor = get(b"GNU.sparse.minor")
        .map(|v| number(v, "format"))
        .transpose()?;
    let name = get(b"GNU.sparse.name").map(<[u8]>::to_vec);
    if let Some(major) = major {
        if (major, minor) != (1, Some(0)) && major != 0 {
            return Err(format!(
                "GNU sparse format {major}.{} (0.0, 0.1 and 1.0 are read)",
                minor.unwrap_or(0)
            ));
        }
        if major == 1 {
            let size = get(b"GNU.sparse.realsize").ok_or("a sparse file without its size")?;
            return Ok(Some(Sparse {
                name,
                size: number(size, "size")?,
                map: None,
            }));
        }
    }
    let size = get(b"GNU.sparse.size").ok_or("a sparse file without its size")?;
    let size = number(size, "size")?;
    let mut numbers = Vec::new();
    if let Some(map) = get(b"GNU.sparse.map") {
        // 0.1: "offset,length,offset,length..."
        for n in map.split(|&b| b == b',').filter(|n| !n.is_empty()) {
            numbers.push(number(n, "map")?);
        }
    } else {
        // 0.0: the pairs as repeated records, in order.
        for (k, v) in records {
            if *k == b"GNU.sparse.offset" || *k == b"GNU.sparse.numbytes" {
                numbers.push(number(v, "map")?);
            }
        }
    }
    if numbers.len() % 2 != 0 || numbers.len() / 2 > MAX_CHUNKS {
        return Err("a sparse map with an odd count or too many chunks".into());
    }
    let map = numbers.chunks(2).map(|p| (p[0], p[1])).collect();
    Ok(Some(Sparse {
        name,
        size,
        map: Some(map),
    }))
}

/// Reads format 1.0's map from the start of the member's data (`stored` bytes): decimal
/// numbers, one a line (the count, then each chunk's offset and length), padded to a
/// 512-byte block. The map and the bytes it took.
pub fn read_map(r: &mut impl Read, stored: u64) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut numbers: Vec<u64> = Vec::new();
    let mut want: Option<usize> = None;
    let (mut current, mut digits) = (0u64, 0);
    let mut taken = 0u64;
    let mut block = [0u8; 512];
    while want != Some(numbers.len()) {
        if taken + 512 > stored {
            return Err("a sparse map longer than the member".into());
        }
        r.read_exact(&mut block)
            .map_err(|e| format!("the archive ends inside a sparse map ({e})"))?;
        taken += 512;
        for &b in &block {
            match b {
                b'0'..=b'9' if digits < 20 => {
                    current = current
                        .checked_mul(10)
                        .and_then(|c| c.checked_add(u64::from(b - b'0')))
                        .ok_or("a number in a sparse map past 2^64")?;
                    digits += 1;
                }
                b'\n' if digits > 0 => {
                    numbers.push(current);
                    (current, digits) = (0, 0);
                    if want.is_none() {
                        let count = usize::try_from(numbers[0])
                            .ok()
                            .filter(|&c| c <= MAX_CHUNKS)
                            .ok_or("a sparse map of too many chunks")?;
                        want = Some(1 + 2 * count);
                    }
                    if want == Some(numbers.len()) {
                        break;
                    }
                }
                _ => return Err("a sparse map that is not decimal numbers one a line".into()),
            }
        }
    }
    let map = numbers[1..].chunks(2).map(|p| (p[0], p[1])).collect();
    Ok((map, taken))
}

/// Checks `map` against a file of `size` bytes whose chunks hold `stored` bytes.
pub fn check(map: &[(u64, u64)], size: u64, stored: u64) -> Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(offset, len) in map {
        let chunk_end = offset
            .checked_add(len)
            .filter(|&e| offset >= end && e <= size)
            .ok_or("a sparse map whose chunks overlap, go backwards or lie past the file's end")?;
        end = chunk_end;
        total += len;
    }
    if total != stored {
        return Err(format!(
            "a sparse map of {total} bytes of data for {stored} bytes stored"
        ));
    }
    Ok(())
}

/// A sparse file's content: the chunks read from the member in order, zeros between.
pub struct Expanded<R> {
    inner: R,
    map: Vec<(u64, u64)>,
    next: usize,
    pos: u64,
    size: u64,
}

impl<R: Read> Expanded<R> {
    /// The content of a file of `size` bytes whose chunks (checked by [`check`]) `inner`
    /// holds one after the other.
    pub fn new(inner: R, map: Vec<(u64, u64)>, size: u64) -> Self {
        Expanded {
            inner,
            map,
            next: 0,
            pos: 0,
            size,
        }
    }
}

impl<R: Read> Read for Expanded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self
            .map
            .get(self.next)
            .is_some_and(|&(o, l)| o + l <= self.pos)
        {
            self.next += 1;
        }
        let room = |end: u64, pos: u64| {
            buf.len()
                .min(usize::try_from(end - pos).unwrap_or(usize::MAX))
        };
        match self.map.get(self.next) {
            Some(&(offset, len)) if offset <= self.pos => {
                let want = room(offset + len, self.pos);
                let n = self.inner.read(&mut buf[..want])?;
                self.pos += n as u64;
                Ok(n)
            }
            next => {
                let end = next.map_or(self.size, |&(offset, _)| offset);
                let want = room(end, self.pos);
                buf[..want].fill(0);
                self.pos += want as u64;
                Ok(want)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(data: &[u8], map: Vec<(u64, u64)>, size: u64) -> Vec<u8> {
        let mut out = Vec::new();
        Expanded::new(data, map, size)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn chunks_land_at_their_offsets_with_zeros_between() {
        let out = expand(b"abcXY", vec![(2, 3), (7, 2), (10, 0)], 10);
        assert_eq!(out, b"\0\0abc\0\0XY\0");
        assert_eq!(expand(b"", vec![(5, 0)], 5), [0; 5]);
        assert_eq!(expand(b"z", vec![(0, 1)], 1), b"z");
    }

    #[test]
    fn the_map_of_format_1_0_is_read_and_its_padding_skipped() {
        let mut member = b"2\n2\n3\n7\n2\n".to_vec();
        member.resize(512, 0);
        member.extend_from_slice(b"abcXY");
        let mut r = &member[..];
        let (map, taken) = read_map(&mut r, member.len() as u64).unwrap();
        assert_eq!((map.clone(), taken), (vec![(2, 3), (7, 2)], 512));
        check(&map, 10, 5).unwrap();
        assert_eq!(expand(r, map, 10), b"\0\0abc\0\0XY\0");
    }

    #[test]
    fn bad_maps_are_refused() {
        assert!(check(&[(4, 2), (3, 1)], 10, 3).is_err(), "backwards");
        assert!(check(&[(0, 4), (3, 1)], 10, 5).is_err(), "overlap");
        assert!(check(&[(8, 4)], 10, 4).is_err(), "past the end");
        assert!(check(&[(u64::MAX, 2)], u64::MAX, 2).is_err(), "overflow");
        assert!(check(&[(0, 4)], 10, 5).is_err(), "less data than stored");
        let mut m = b"1\n0\n".to_vec();
        m.resize(512, 0);
        assert!(read_map(&mut &m[..], 512).is_err(), "ends inside the map");
        let mut m = b"99999999999\n".to_vec();
        m.resize(512, 0);
        assert!(read_map(&mut &m[..], 512).is_err(), "too many chunks");
        assert!(read_map(&mut &b"1\nx\n"[..], 512).is_err(), "not numbers");
    }

    #[test]
    fn pax_records_of_each_format() {
        let v1: &[(&[u8], &[u8])] = &[
            (b"GNU.sparse.major", b"1"),
            (b"GNU.sparse.minor", b"0"),
            (b"GNU.sparse.name", b"dir/s"),
            (b"GNU.sparse.realsize", b"10485760"),
        ];
        let s = from_pax(v1).unwrap().unwrap();
        assert_eq!(
            (s.name.as_deref(), s.size, s.map),
            (Some(&b"dir/s"[..]), 10485760, None)
        );
        let v01: &[(&[u8], &[u8])] =
            &[(b"GNU.sparse.size", b"10"), (b"GNU.sparse.map", b"2,3,7,2")];
        assert_eq!(
            from_pax(v01).unwrap().unwrap().map,
            Some(vec![(2, 3), (7, 2)])
        );
        let v00: &[(&[u8], &[u8])] = &[
            (b"GNU.sparse.size", b"10"),
            (b"GNU.sparse.offset", b"2"),
            (b"GNU.sparse.numbytes", b"3"),
            (b"GNU.sparse.offset", b"7"),
            (b"GNU.sparse.numbytes", b"2"),
        ];
        assert_eq!(
            from_pax(v00).unwrap().unwrap().map,
            Some(vec![(2, 3), (7, 2)])
        );
        assert_eq!(from_pax(&[(b"path", b"x")]).unwrap(), None);
        assert!(from_pax(&[(b"GNU.sparse.major", b"2")]).is_err());
        assert!(from_pax(&[(b"GNU.sparse.size", b"10"), (b"GNU.sparse.map", b"1")]).is_err());
    }
}
