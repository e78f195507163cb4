//! Tar archives written byte by byte (ustar headers, PAX records, GNU base-256 sizes), so
//! that tests can make what no well-behaved tar program writes: names with `..`, links to
//! nowhere, sizes past the data, a path given twice. Independent of the tar crate that
//! `sqfs pack --tar` reads with, so a bug there cannot hide in the fixtures.

/// One member's header fields.
#[derive(Clone)]
pub struct Header {
    pub name: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// The size field (what the data holds, unless a test lies).
    pub size: u64,
    pub link: Vec<u8>,
    pub major: u32,
    pub minor: u32,
}

impl Header {
    pub fn new(kind: u8, name: &str) -> Header {
        Header {
            name: name.as_bytes().to_vec(),
            kind,
            mode: if kind == b'5' { 0o755 } else { 0o644 },
            uid: 1000,
            gid: 100,
            mtime: 1_600_000_000,
            size: 0,
            link: Vec::new(),
            major: 0,
            minor: 0,
        }
    }
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() <= digits {
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        // GNU's base-256: the high bit set, the value big-endian in the rest.
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
    }
}

/// A 512-byte ustar header (names past 100 bytes are cut: give them in PAX records).
pub fn header_block(h: &Header) -> [u8; 512] {
    let mut b = [0u8; 512];
    let name = &h.name[..h.name.len().min(100)];
    b[..name.len()].copy_from_slice(name);
    octal(&mut b[100..108], u64::from(h.mode));
    octal(&mut b[108..116], h.uid);
    octal(&mut b[116..124], h.gid);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.kind;
    let link = &h.link[..h.link.len().min(100)];
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], u64::from(h.major));
    octal(&mut b[337..345], u64::from(h.minor));
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

/// PAX records, each `LEN KEY=VALUE\n` with LEN counting the whole record.
pub fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// An archive being written.
#[derive(Default)]
pub struct Tar {
    pub bytes: Vec<u8>,
}

impl Tar {
    fn pad(&mut self) {
        let n = self.bytes.len().next_multiple_of(512);
        self.bytes.resize(n, 0);
    }

    /// A member with `data`, after a PAX header of `pax` records if any.
    pub fn member(&mut self, h: &Header, data: &[u8], pax: &[(&str, &[u8])]) -> &mut Self {
        if !pax.is_empty() {
            let records = pax_records(pax);
            let mut x = Header::new(b'x', "PaxHeaders/member");
            x.size = records.len() as u64;
            self.bytes.extend_from_slice(&header_block(&x));
            self.bytes.extend_from_slice(&records);
            self.pad();
        }
        self.bytes.extend_from_slice(&header_block(h));
        self.bytes.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Header::new(b'0', name);
        h.size = data.len() as u64;
        self.member(&h, data, &[])
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let mut h = Header::new(b'5', name);
        h.mode = mode;
        self.member(&h, &[], &[])
    }

    /// A hard link (`1`) or symlink (`2`) to `target`.
    pub fn link(&mut self, kind: u8, name: &str, target: &str) -> &mut Self {
        let mut h = Header::new(kind, name);
        h.link = target.as_bytes().to_vec();
        self.member(&h, &[], &[])
    }

    /// The archive with its end: two blocks of zeros.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.resize(out.len() + 1024, 0);
        out
    }
}
