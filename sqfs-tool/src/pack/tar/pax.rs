//! PAX extended headers, read here rather than through the tar crate: its record parser
//! splits the header at every newline, so a value holding one (an xattr's, a name's) is
//! "malformed" to it and the records after it are lost. POSIX's records are
//! length-prefixed, `LEN KEY=VALUE\n`, and values may hold any byte.
//!
//! The header's bytes are the ones the tar crate read before the member (recorded by
//! `input.rs`): the blocks between the end of the previous member and the member's own
//! header, of which the last `x` one holds the member's records.

use tar::Header;

const BLOCK: u64 = 512;

/// The data of the last PAX (`x`) header among the headers read before a member:
/// `recorded` holds the stream's bytes from position `start`, and the member's own
/// header is at `member_header`. An error if those bytes are not the headers the tar
/// crate must have read (which would be a bug, or a stream that is not what it was).
pub fn find(
    recorded: &[u8],
    start: u64,
    member_header: u64,
) -> Result<Option<&[u8]>, &'static str> {
    const LOST: &str = "the headers before it do not read back";
    let block = BLOCK as usize;
    let end = member_header
        .checked_sub(start)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= recorded.len())
        .ok_or(LOST)?;
    // The previous member's padding comes first.
    let mut at = (start.next_multiple_of(BLOCK) - start) as usize;
    let mut pax = None;
    while at < end {
        let bytes = recorded.get(at..at + block).ok_or(LOST)?;
        let header = Header::from_byte_slice(bytes);
        let size = header
            .entry_size()
            .ok()
            .and_then(|s| usize::try_from(s).ok())
            .ok_or(LOST)?;
        let data = at + block;
        let data_end = data.checked_add(size).filter(|&e| e <= end).ok_or(LOST)?;
        if header.entry_type().is_pax_local_extensions() {
            pax = Some(&recorded[data..data_end]);
        }
        // Members are padded to whole blocks of the stream (not of the recording).
        let padding = ((BLOCK - (start + data_end as u64) % BLOCK) % BLOCK) as usize;
        at = data_end.checked_add(padding).ok_or(LOST)?;
    }
    if at != end {
        return Err(LOST);
    }
    Ok(pax)
}

/// The records of a PAX header, in order; None if one is malformed.
pub fn records(mut data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data.iter().take(20).position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let record = &data[space + 1..len - 1];
        let equals = record.iter().position(|&b| b == b'=')?;
        out.push((&record[..equals], &record[equals + 1..]));
        data = &data[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_may_hold_newlines_and_equals_signs() {
        let data = b"29 SCHILY.xattr.user.a=x\ny=z\n12 path=a b\n";
        let r = records(data).unwrap();
        assert_eq!(
            r,
            [
                (&b"SCHILY.xattr.user.a"[..], &b"x\ny=z"[..]),
                (&b"path"[..], &b"a b"[..])
            ]
        );
        assert_eq!(records(b"").unwrap(), []);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            &b"5 a=b\n"[..],
            b"7 a=b\n",
            b"x a=b\n",
            b"6 ab\n\n",
            b"6 a=b",
            b"99999999999999999999999 a=b\n",
            b"3 \n",
        ] {
            assert!(records(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn header(kind: u8, size: u64) -> Vec<u8> {
        let mut h = Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn the_last_pax_header_before_the_member_is_found() {
        // 100 bytes of the previous member's padding, a long name, a PAX header, the member.
        let mut s = vec![0u8; 100];
        s.extend(header(b'L', 600));
        s.extend(vec![b'n'; 1024]);
        let pax = b"12 path=a b\n";
        s.extend(header(b'x', pax.len() as u64));
        let mut block = pax.to_vec();
        block.resize(512, 0);
        s.extend(block);
        let member = 924 + s.len() as u64;
        s.extend(header(b'0', 0));
        assert_eq!(find(&s, 924, member), Ok(Some(&pax[..])));
        assert_eq!(find(&s, 924, 924 + 100), Ok(None), "no header before it");
        assert!(find(&s[..700], 924, member).is_err(), "cut short");
        assert!(find(&s, 924, member - 3).is_err(), "not at a header");
    }
}
