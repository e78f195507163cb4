//! SIF, the Singularity/Apptainer image format: a 128-byte global header, a table of
//! fixed-size descriptors, and the data objects they describe, one of which is the
//! container's root filesystem (its "primary system partition", a SquashFS).
//!
//! The layouts, type codes and architecture codes are those of the format's reference
//! implementation, github.com/sylabs/sif (pkg/sif: `header`, `rawDescriptor`, `partition`,
//! the `DataType`/`FSType`/`PartType` constants, arch.go), all little-endian and packed:
//!
//! ```text
//! header (128 bytes)                      descriptor (585 bytes)
//!   0  launch script   [32]                 0  data type      i32
//!  32  magic "SIF_MAGIC\0" [10]             4  used           u8 (bool)
//!  42  version "01\0"  [3]                  5  id             u32
//!  45  arch "02\0"     [3]                  9  group id       u32 (0xf0000000 mask)
//!  48  uuid            [16]                13  linked id      u32 (0xf0000000: a group)
//!  64  created, modified      i64 × 2      17  offset, size, size with padding i64 × 3
//!  80  descriptors free, total i64 × 2     41  created, modified, uid, gid     i64 × 4
//!  96  descriptors offset, size i64 × 2    73  name           [128]
//! 112  data offset, size      i64 × 2     201  extra          [384] (partition: fs type
//!                                                i32, partition type i32, arch [3])
//! ```
//!
//! A SIF is untrusted input like the SquashFS in it: every field used here is checked
//! before use (see [`Sif::read`] for the rules), the descriptor count is capped, and every
//! object must lie inside the file without overlapping another.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};
use crate::source::Source;
use crate::superblock::{self, SUPERBLOCK_SIZE};

/// "SIF_MAGIC" and its NUL, at [`MAGIC_AT`].
pub const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";
pub const MAGIC_AT: usize = 32;
pub const HEADER_SIZE: usize = 128;
pub const DESCRIPTOR_SIZE: usize = 585;
/// The most descriptors a table may have. siftool and Apptainer make 48; the cap bounds
/// what a hostile header can make us read and keep (4096 × 585 bytes = 2.3 MiB).
pub const MAX_DESCRIPTORS: u64 = 4096;
/// The only version of the format there is ("01" and a NUL).
const VERSION: &[u8; 3] = b"01\0";
/// Group and link ids carry this mask (a link to a group has it set).
const GROUP_MASK: u32 = 0xf000_0000;

/// Why a SIF cannot be opened: the header or a descriptor is damaged, or the image has no
/// root filesystem this library can read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SifError {
    #[error("damaged SIF header: {0}")]
    Header(String),
    #[error("unsupported SIF version {0:?} (only \"01\" exists)")]
    Version(String),
    #[error("damaged SIF descriptor {index}: {what}")]
    Descriptor { index: u64, what: String },
    #[error("damaged SIF: objects {first} and {second} overlap")]
    Overlap { first: u32, second: u32 },
    #[error("SIF image has no primary system partition (a Partition object of type PrimSys)")]
    NoPrimary,
    #[error("SIF image has {0} primary system partitions (objects {1}); it must have one")]
    ManyPrimaries(usize, String),
    #[error("SIF primary partition (object {id}) is {}, not SquashFS: only SquashFS is supported", .fs.name())]
    NotSquashfs { id: u32, fs: FsType },
    #[error("SIF primary partition (object {id}) is encrypted ({}): not supported", .fs.name())]
    Encrypted { id: u32, fs: FsType },
    #[error(
        "SIF primary partition (object {id}, bytes {start}-{end}) does not hold a SquashFS ({why})"
    )]
    NotSquashfsData {
        id: u32,
        start: u64,
        end: u64,
        why: &'static str,
    },
    #[error(
        "SIF primary partition (object {id}) holds {size} bytes but its SquashFS claims {claimed}"
    )]
    PartitionTooSmall { id: u32, size: u64, claimed: u64 },
}

/// A data object's type (the descriptor's first field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataType(pub i32);

impl DataType {
    pub const DEFFILE: Self = Self(0x4001);
    pub const ENV_VARS: Self = Self(0x4002);
    pub const LABELS: Self = Self(0x4003);
    pub const PARTITION: Self = Self(0x4004);
    pub const SIGNATURE: Self = Self(0x4005);
    pub const GENERIC_JSON: Self = Self(0x4006);
    pub const GENERIC: Self = Self(0x4007);
    pub const CRYPTO_MESSAGE: Self = Self(0x4008);
    pub const SBOM: Self = Self(0x4009);
    pub const OCI_ROOT_INDEX: Self = Self(0x400a);
    pub const OCI_BLOB: Self = Self(0x400b);

    /// The name `siftool list` shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::DEFFILE => "Def.FILE",
            Self::ENV_VARS => "Env.Vars",
            Self::LABELS => "JSON.Labels",
            Self::PARTITION => "FS",
            Self::SIGNATURE => "Signature",
            Self::GENERIC_JSON => "JSON.Generic",
            Self::GENERIC => "Generic/Raw",
            Self::CRYPTO_MESSAGE => "Cryptographic Message",
            Self::SBOM => "SBOM",
            Self::OCI_ROOT_INDEX => "OCI.RootIndex",
            Self::OCI_BLOB => "OCI.Blob",
            _ => "Unknown",
        }
    }
}

/// A partition's filesystem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsType(pub i32);

impl FsType {
    pub const SQUASHFS: Self = Self(1);
    pub const EXT3: Self = Self(2);
    pub const IMMUTABLE_OBJECTS: Self = Self(3);
    pub const RAW: Self = Self(4);
    pub const ENCRYPTED_SQUASHFS: Self = Self(5);
    /// Apptainer's (github.com/apptainer/sif), for unprivileged encryption.
    pub const GOCRYPTFS_SQUASHFS: Self = Self(6);

    /// The name `siftool list` shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::SQUASHFS => "Squashfs",
            Self::EXT3 => "Ext3",
            Self::IMMUTABLE_OBJECTS => "Archive",
            Self::RAW => "Raw",
            Self::ENCRYPTED_SQUASHFS => "Encrypted squashfs",
            Self::GOCRYPTFS_SQUASHFS => "Gocryptfs squashfs",
            _ => "Unknown",
        }
    }
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartType(pub i32);

impl PartType {
    pub const SYSTEM: Self = Self(1);
    /// The container's root filesystem: the one partition that is run.
    pub const PRIMARY_SYSTEM: Self = Self(2);
    pub const DATA: Self = Self(3);
    pub const OVERLAY: Self = Self(4);

    /// The name `siftool list` shows (`*System` is the primary one).
    pub fn name(self) -> &'static str {
        match self {
            Self::SYSTEM => "System",
            Self::PRIMARY_SYSTEM => "*System",
            Self::DATA => "Data",
            Self::OVERLAY => "Overlay",
            _ => "Unknown",
        }
    }
}

/// An architecture code: two ASCII digits and a NUL ("02" is amd64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch(pub [u8; 3]);

impl Arch {
    /// Go's name for it, as siftool prints it; "unknown" for "00" and anything unlisted.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 13] = [
            "386", "amd64", "arm", "arm64", "ppc64", "ppc64le", "mips", "mipsle", "mips64",
            "mips64le", "s390x", "riscv64", "loong64",
        ];
        let [a, b, 0] = self.0 else { return "unknown" };
        if !a.is_ascii_digit() || !b.is_ascii_digit() {
            return "unknown";
        }
        let code = usize::from(a - b'0') * 10 + usize::from(b - b'0');
        code.checked_sub(1)
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("unknown")
    }
}

/// A partition's metadata (the start of a Partition descriptor's "extra" field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub fs: FsType,
    pub part: PartType,
    pub arch: Arch,
}

/// One data object: a used descriptor.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its position in the descriptor table (from 0).
    pub index: u64,
    pub id: u32,
    /// The group id as stored (with its 0xf0000000 mask); see [`Object::group`].
    pub group_raw: u32,
    /// The linked object or group as stored; see [`Object::link`].
    pub link_raw: u32,
    pub data_type: DataType,
    /// Bytes from the start of the file, and how many.
    pub offset: u64,
    pub size: u64,
    /// The first 12 bytes of the descriptor's type-specific field.
    pub extra: [u8; 12],
}

impl Object {
    /// The object's group (0: none).
    pub fn group(&self) -> u32 {
        self.group_raw & !GROUP_MASK
    }

    /// The object or group this one is linked to (0: none), and whether it is a group.
    pub fn link(&self) -> (u32, bool) {
        (
            self.link_raw & !GROUP_MASK,
            self.link_raw & GROUP_MASK == GROUP_MASK,
        )
    }

    /// The partition metadata, for a Partition object.
    pub fn partition(&self) -> Option<Partition> {
        (self.data_type == DataType::PARTITION).then(|| Partition {
            fs: FsType(i32_at(&self.extra, 0)),
            part: PartType(i32_at(&self.extra, 4)),
            arch: Arch([self.extra[8], self.extra[9], self.extra[10]]),
        })
    }

    /// The first two 32-bit words of the type-specific field (a signature's hash type, a
    /// cryptographic message's format and message type, an SBOM's format).
    pub fn extra_words(&self) -> (i32, i32) {
        (i32_at(&self.extra, 0), i32_at(&self.extra, 4))
    }

    /// One past the object's last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// A checked SIF header and its used descriptors, in table order.
#[derive(Debug, Clone)]
pub struct Sif {
    pub launch_script: [u8; 32],
    pub version: [u8; 3],
    pub arch: Arch,
    pub id: [u8; 16],
    pub created_at: i64,
    pub modified_at: i64,
    pub descriptors_free: u64,
    pub descriptors_total: u64,
    pub descriptors_offset: u64,
    pub descriptors_size: u64,
    pub data_offset: u64,
    pub data_size: u64,
    pub objects: Vec<Object>,
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Where the bytes come from: a file, or (for tests) a slice.
trait ReadAt {
    fn len(&self) -> Result<u64>;
    /// Fills `buf` from `pos`, or says how many bytes there were.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize>;
}

impl ReadAt for File {
    fn len(&self) -> Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(self, &mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}

impl ReadAt for [u8] {
    fn len(&self) -> Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let start = usize::try_from(pos).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Whether the first bytes of a file make it a SIF: SIF's magic at byte 32, and not
/// SquashFS's at byte 0 (a SquashFS superblock is always taken as one).
pub fn is_sif(prefix: &[u8]) -> bool {
    !prefix.starts_with(b"hsqs") && prefix.get(MAGIC_AT..MAGIC_AT + MAGIC.len()) == Some(MAGIC)
}

fn header_error(what: impl Into<String>) -> Error {
    Error::Sif(SifError::Header(what.into()))
}

/// A signed header field that must be a size or an offset.
fn non_negative(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| header_error(format!("{what} is negative ({value})")))
}

impl Sif {
    /// The SIF in `file`, if the file is one (see [`is_sif`]); None for anything else.
    pub fn detect(file: &File) -> Result<Option<Sif>> {
        Self::detect_in(file)
    }

    /// Reads and checks the SIF in `file` (which must start with a SIF header).
    ///
    /// The rules: the version is "01"; the descriptor table lies after the header and
    /// inside the file and holds `descriptors total` (at most [`MAX_DESCRIPTORS`])
    /// descriptors of 585 bytes; `descriptors free` is at most the total; the data section
    /// starts after the table and ends inside the file. Of the descriptors, those not in
    /// use (used flag 0) are skipped; a used one (flag 1; any other value is damage) has a
    /// non-zero id no other has, and an object that starts in the data section and ends
    /// inside the file. No two objects overlap.
    pub fn read(file: &File) -> Result<Sif> {
        Self::read_from(file)
    }

    fn detect_in<R: ReadAt + ?Sized>(src: &R) -> Result<Option<Sif>> {
        let mut prefix = [0u8; MAGIC_AT + MAGIC.len()];
        let n = src.read_at(0, &mut prefix)?;
        if !is_sif(&prefix[..n]) {
            return Ok(None);
        }
        Self::read_from(src).map(Some)
    }

    fn read_from<R: ReadAt + ?Sized>(src: &R) -> Result<Sif> {
        let file_len = src.len()?;
        let mut h = [0u8; HEADER_SIZE];
        if src.read_at(0, &mut h)? < HEADER_SIZE {
            return Err(header_error(format!(
                "the file ({file_len} bytes) is shorter than the {HEADER_SIZE}-byte header"
            )));
        }
        if &h[MAGIC_AT..MAGIC_AT + MAGIC.len()] != MAGIC {
            return Err(header_error("no SIF magic at byte 32"));
        }
        let version: [u8; 3] = h[42..45].try_into().expect("3 bytes");
        if &version != VERSION {
            let shown = version.iter().take_while(|&&b| b != 0).copied().collect();
            return Err(Error::Sif(SifError::Version(
                String::from_utf8(shown).unwrap_or_else(|e| format!("{:02x?}", e.as_bytes())),
            )));
        }
        let free = i64_at(&h, 80);
        let total = i64_at(&h, 88);
        let sif = Sif {
            launch_script: h[0..32].try_into().expect("32 bytes"),
            version,
            arch: Arch(h[45..48].try_into().expect("3 bytes")),
            id: h[48..64].try_into().expect("16 bytes"),
            created_at: i64_at(&h, 64),
            modified_at: i64_at(&h, 72),
            descriptors_total: non_negative(total, "the descriptor count")?,
            descriptors_free: non_negative(free, "the free descriptor count")?,
            descriptors_offset: non_negative(i64_at(&h, 96), "the descriptor table offset")?,
            descriptors_size: non_negative(i64_at(&h, 104), "the descriptor table size")?,
            data_offset: non_negative(i64_at(&h, 112), "the data offset")?,
            data_size: non_negative(i64_at(&h, 120), "the data size")?,
            objects: Vec::new(),
        };
        sif.check_layout(file_len)?;
        sif.read_descriptors(src, file_len)
    }

    /// The header's own rules: counts, and the table and data section in order in the file.
    fn check_layout(&self, file_len: u64) -> Result<()> {
        let total = self.descriptors_total;
        if total > MAX_DESCRIPTORS {
            return Err(header_error(format!(
                "{total} descriptors (at most {MAX_DESCRIPTORS} are read)"
            )));
        }
        if self.descriptors_free > total {
            return Err(header_error(format!(
                "{} free descriptors of {total}",
                self.descriptors_free
            )));
        }
        let table = total * DESCRIPTOR_SIZE as u64;
        if self.descriptors_size < table {
            return Err(header_error(format!(
                "a descriptor table of {} bytes cannot hold {total} descriptors",
                self.descriptors_size
            )));
        }
        let (off, size) = (self.descriptors_offset, self.descriptors_size);
        if off < HEADER_SIZE as u64 {
            return Err(header_error(format!(
                "the descriptor table (at {off}) overlaps the header"
            )));
        }
        let table_end = off
            .checked_add(size)
            .filter(|&end| end <= file_len)
            .ok_or_else(|| {
                header_error(format!(
                    "the descriptor table ({size} bytes at {off}) ends past the end of the file ({file_len} bytes)"
                ))
            })?;
        if self.data_offset < table_end {
            return Err(header_error(format!(
                "the data section (at {}) starts inside the descriptor table (which ends at {table_end})",
                self.data_offset
            )));
        }
        if self
            .data_offset
            .checked_add(self.data_size)
            .is_none_or(|end| end > file_len)
        {
            return Err(header_error(format!(
                "the data section ({} bytes at {}) ends past the end of the file ({file_len} bytes)",
                self.data_size, self.data_offset
            )));
        }
        Ok(())
    }

    fn read_descriptors<R: ReadAt + ?Sized>(mut self, src: &R, file_len: u64) -> Result<Sif> {
        // Both bounded above: total by MAX_DESCRIPTORS, the table by the file.
        let mut table = vec![0u8; self.descriptors_total as usize * DESCRIPTOR_SIZE];
        if src.read_at(self.descriptors_offset, &mut table)? < table.len() {
            return Err(header_error("the file ended inside the descriptor table"));
        }
        for (index, d) in table.chunks_exact(DESCRIPTOR_SIZE).enumerate() {
            let index = index as u64;
            if let Some(object) = self.descriptor(index, d, file_len)? {
                self.objects.push(object);
            }
        }
        let mut ids: Vec<u32> = self.objects.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|p| p[0] == p[1]) {
            return Err(Error::Sif(SifError::Header(format!(
                "two objects have id {}",
                pair[0]
            ))));
        }
        let mut spans: Vec<&Object> = self.objects.iter().filter(|o| o.size > 0).collect();
        spans.sort_unstable_by_key(|o| o.offset);
        if let Some(p) = spans.windows(2).find(|p| p[1].offset < p[0].end()) {
            return Err(Error::Sif(SifError::Overlap {
                first: p[0].id,
                second: p[1].id,
            }));
        }
        Ok(self)
    }

    /// The used descriptor at `index`, checked; None for a free slot.
    fn descriptor(&self, index: u64, d: &[u8], file_len: u64) -> Result<Option<Object>> {
        let bad = |what: String| Error::Sif(SifError::Descriptor { index, what });
        match d[4] {
            0 => return Ok(None),
            1 => {}
            other => return Err(bad(format!("used flag is {other}, not 0 or 1"))),
        }
        let id = u32_at(d, 5);
        if id == 0 {
            return Err(bad("object id 0".into()));
        }
        let (offset, size) = (i64_at(d, 17), i64_at(d, 25));
        let (Ok(offset), Ok(size)) = (u64::try_from(offset), u64::try_from(size)) else {
            return Err(bad(format!("negative offset or size ({offset}, {size})")));
        };
        if offset < self.data_offset {
            return Err(bad(format!(
                "object {id} (at {offset}) starts before the data section (at {})",
                self.data_offset
            )));
        }
        if offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(bad(format!(
                "object {id} ({size} bytes at {offset}) ends past the end of the file ({file_len} bytes)"
            )));
        }
        Ok(Some(Object {
            index,
            id,
            group_raw: u32_at(d, 9),
            link_raw: u32_at(d, 13),
            data_type: DataType(i32_at(d, 0)),
            offset,
            size,
            extra: d[201..213].try_into().expect("12 bytes"),
        }))
    }

    /// The object the container runs: the one Partition object of partition type PrimSys,
    /// which must hold a SquashFS. Other partitions (System, Data, Overlay) are never
    /// taken, whatever they hold.
    pub fn primary(&self) -> Result<&Object> {
        let primaries: Vec<(&Object, Partition)> = self
            .objects
            .iter()
            .filter_map(|o| o.partition().map(|p| (o, p)))
            .filter(|(_, p)| p.part == PartType::PRIMARY_SYSTEM)
            .collect();
        let (object, partition) = match primaries.as_slice() {
            [] => return Err(Error::Sif(SifError::NoPrimary)),
            [one] => *one,
            many => {
                let ids: Vec<String> = many.iter().map(|(o, _)| o.id.to_string()).collect();
                return Err(Error::Sif(SifError::ManyPrimaries(
                    many.len(),
                    ids.join(", "),
                )));
            }
        };
        let id = object.id;
        match partition.fs {
            FsType::SQUASHFS => Ok(object),
            fs @ (FsType::ENCRYPTED_SQUASHFS | FsType::GOCRYPTFS_SQUASHFS) => {
                Err(Error::Sif(SifError::Encrypted { id, fs }))
            }
            fs => Err(Error::Sif(SifError::NotSquashfs { id, fs })),
        }
    }

    /// The primary partition as the image to open: its bytes and no others. Checked in
    /// the SIF's terms first: that it holds a SquashFS superblock, and that the SquashFS
    /// fits in it (it is never read past the partition's end, even where the file goes on).
    pub(crate) fn primary_source(&self, file: File) -> Result<Source> {
        let primary = self.primary()?;
        let (id, start, size) = (primary.id, primary.offset, primary.size);
        let not_squashfs = |why| SifError::NotSquashfsData {
            id,
            start,
            end: primary.end(),
            why,
        };
        if size < SUPERBLOCK_SIZE as u64 {
            return Err(not_squashfs("too small for a superblock").into());
        }
        let source = Source::bounded(file, start, size);
        let mut head = [0u8; SUPERBLOCK_SIZE];
        source.read_prefix(&mut head)?;
        if u32_at(&head, 0) != superblock::MAGIC {
            return Err(not_squashfs("bad magic").into());
        }
        let claimed = u64::from_le_bytes(head[40..48].try_into().expect("8 bytes"));
        if claimed > size {
            return Err(SifError::PartitionTooSmall { id, size, claimed }.into());
        }
        Ok(source)
    }

    /// The launch script without its NUL padding.
    pub fn launch_script(&self) -> &[u8] {
        let end = self
            .launch_script
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        &self.launch_script[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SIF as siftool lays one out: header, `capacity` descriptors at 4096, data after.
    struct Builder {
        capacity: u64,
        objects: Vec<(i32, u64, u64, [u8; 12])>,
    }

    const DATA_AT: u64 = 4096 + 48 * DESCRIPTOR_SIZE as u64;

    fn partition(fs: i32, part: i32) -> [u8; 12] {
        let mut e = [0u8; 12];
        e[0..4].copy_from_slice(&fs.to_le_bytes());
        e[4..8].copy_from_slice(&part.to_le_bytes());
        e[8..11].copy_from_slice(b"02\0");
        e
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                capacity: 48,
                objects: Vec::new(),
            }
        }
        /// An object of `size` bytes at `offset` from the data section's start.
        fn object(mut self, data_type: i32, at: u64, size: u64, extra: [u8; 12]) -> Self {
            self.objects.push((data_type, DATA_AT + at, size, extra));
            self
        }
        fn bytes(&self) -> Vec<u8> {
            let end = self
                .objects
                .iter()
                .map(|o| o.1 + o.2)
                .max()
                .unwrap_or(DATA_AT);
            let mut b = vec![0u8; end as usize];
            b[32..42].copy_from_slice(MAGIC);
            b[42..45].copy_from_slice(b"01\0");
            b[45..48].copy_from_slice(b"02\0");
            let used = self.objects.len() as i64;
            let put = |b: &mut Vec<u8>, at: usize, v: i64| {
                b[at..at + 8].copy_from_slice(&v.to_le_bytes())
            };
            put(&mut b, 80, self.capacity as i64 - used);
            put(&mut b, 88, self.capacity as i64);
            put(&mut b, 96, 4096);
            put(&mut b, 104, (self.capacity * DESCRIPTOR_SIZE as u64) as i64);
            put(&mut b, 112, DATA_AT as i64);
            put(&mut b, 120, (end - DATA_AT) as i64);
            for (i, (t, off, size, extra)) in self.objects.iter().enumerate() {
                let d = 4096 + i * DESCRIPTOR_SIZE;
                b[d..d + 4].copy_from_slice(&t.to_le_bytes());
                b[d + 4] = 1;
                b[d + 5..d + 9].copy_from_slice(&(i as u32 + 1).to_le_bytes());
                b[d + 9..d + 13].copy_from_slice(&GROUP_MASK.to_le_bytes());
                put(&mut b, d + 17, *off as i64);
                put(&mut b, d + 25, *size as i64);
                b[d + 201..d + 213].copy_from_slice(extra);
            }
            b
        }
    }

    fn read(b: &[u8]) -> Result<Sif> {
        Sif::read_from(b)
    }

    fn set_i64(b: &mut [u8], at: usize, v: i64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn descriptor(i: usize) -> usize {
        4096 + i * DESCRIPTOR_SIZE
    }

    fn message(r: Result<impl std::fmt::Debug>) -> String {
        r.expect_err("must be refused").to_string()
    }

    /// Deffile, overlay, primary, data: the primary is object 3.
    fn usual() -> Builder {
        Builder::new()
            .object(0x4001, 0, 100, [0; 12])
            .object(0x4004, 4096, 4096, partition(1, 4))
            .object(0x4004, 8192, 8192, partition(1, 2))
            .object(0x4004, 16384, 4096, partition(1, 3))
    }

    #[test]
    fn the_primary_squashfs_partition_is_taken_and_no_other() {
        let sif = read(&usual().bytes()).unwrap();
        assert_eq!(sif.objects.len(), 4);
        assert_eq!(sif.descriptors_free, 44);
        let p = sif.primary().unwrap();
        assert_eq!((p.id, p.offset, p.size), (3, DATA_AT + 8192, 8192));
        assert_eq!(p.partition().unwrap().arch.name(), "amd64");
        assert_eq!(sif.objects[1].partition().unwrap().part.name(), "Overlay");
        assert_eq!(sif.objects[0].group(), 0);
    }

    #[test]
    fn detection_needs_the_magic_and_not_squashfs_magic() {
        let mut b = usual().bytes();
        assert!(Sif::detect_in(b.as_slice()).unwrap().is_some());
        b[0..4].copy_from_slice(b"hsqs");
        assert!(Sif::detect_in(b.as_slice()).unwrap().is_none());
        assert!(Sif::detect_in(&b"short"[..]).unwrap().is_none());
        assert!(Sif::detect_in(&[0u8; 200][..]).unwrap().is_none());
        let mut short = usual().bytes();
        short.truncate(100);
        assert!(message(Sif::detect_in(short.as_slice())).contains("shorter than the 128-byte"));
    }

    #[test]
    fn without_a_usable_primary_partition_the_image_is_refused() {
        let none = Builder::new()
            .object(0x4004, 0, 4096, partition(1, 4))
            .object(0x4004, 4096, 4096, partition(1, 3))
            .object(0x4004, 8192, 4096, partition(1, 1));
        let msg = message(read(&none.bytes()).unwrap().primary());
        assert!(msg.contains("no primary system partition"), "{msg}");
        for (fs, expect) in [
            (2, "is Ext3, not SquashFS"),
            (4, "is Raw, not SquashFS"),
            (9, "is Unknown, not SquashFS"),
            (5, "is encrypted (Encrypted squashfs)"),
            (6, "is encrypted (Gocryptfs squashfs)"),
        ] {
            let b = Builder::new().object(0x4004, 0, 4096, partition(fs, 2));
            let msg = message(read(&b.bytes()).unwrap().primary());
            assert!(msg.contains(expect), "{fs}: {msg}");
        }
        let two = Builder::new()
            .object(0x4004, 0, 4096, partition(1, 2))
            .object(0x4004, 4096, 4096, partition(1, 2));
        let msg = message(read(&two.bytes()).unwrap().primary());
        assert!(
            msg.contains("2 primary system partitions (objects 1, 2)"),
            "{msg}"
        );
        // A PrimSys-like extra on an object that is not a partition means nothing.
        let deffile = Builder::new().object(0x4001, 0, 4096, partition(1, 2));
        assert!(read(&deffile.bytes()).unwrap().primary().is_err());
    }

    #[test]
    fn damaged_headers_are_refused() {
        let good = usual().bytes();
        let len = good.len() as i64;
        let cases: [(usize, i64, &str); 10] = [
            (96, len, "descriptor table"),
            (96, 64, "overlaps the header"),
            (104, len, "ends past the end of the file"),
            (104, 100, "cannot hold 48 descriptors"),
            (88, 1 << 40, "at most 4096"),
            (88, -1, "descriptor count is negative"),
            (80, 49, "49 free descriptors of 48"),
            (112, 5000, "starts inside the descriptor table"),
            (120, len, "data section"),
            (112, i64::MAX, "data section"),
        ];
        for (at, value, expect) in cases {
            let mut b = good.clone();
            set_i64(&mut b, at, value);
            let msg = message(read(&b));
            assert!(
                msg.starts_with("damaged SIF header: ") && msg.contains(expect),
                "{at}={value}: {msg}"
            );
        }
        let mut b = good.clone();
        b[42..45].copy_from_slice(b"02\0");
        assert!(message(read(&b)).contains("unsupported SIF version \"02\""));
    }

    #[test]
    fn damaged_descriptors_are_refused() {
        let good = usual().bytes();
        let len = good.len() as i64;
        let d = descriptor(2);
        let cases: [(usize, i64, &str); 5] = [
            (d + 25, len, "ends past the end of the file"),
            (d + 17, len - 10, "ends past the end of the file"),
            (d + 17, i64::MAX, "ends past the end of the file"),
            (d + 25, -5, "negative offset or size"),
            (d + 17, 100, "starts before the data section"),
        ];
        for (at, value, expect) in cases {
            let mut b = good.clone();
            set_i64(&mut b, at, value);
            let msg = message(read(&b));
            assert!(
                msg.starts_with("damaged SIF descriptor 2: ") && msg.contains(expect),
                "{at}={value}: {msg}"
            );
        }
        // The primary moved onto the overlay before it.
        let mut b = good.clone();
        set_i64(&mut b, d + 17, DATA_AT as i64 + 6000);
        assert_eq!(message(read(&b)), "damaged SIF: objects 2 and 3 overlap");
        let mut b = good.clone();
        b[d + 4] = 7;
        assert!(message(read(&b)).contains("used flag is 7"));
        let mut b = good.clone();
        b[d + 5..d + 9].copy_from_slice(&1u32.to_le_bytes());
        assert!(message(read(&b)).contains("two objects have id 1"));
        let mut b = good.clone();
        b[d + 5..d + 9].copy_from_slice(&0u32.to_le_bytes());
        assert!(message(read(&b)).contains("object id 0"));
        // A free slot is not looked at, whatever it holds.
        let mut b = good.clone();
        b[d + 4] = 0;
        set_i64(&mut b, d + 17, -1);
        let sif = read(&b).unwrap();
        assert_eq!(sif.objects.len(), 3);
        assert!(matches!(
            sif.primary(),
            Err(Error::Sif(SifError::NoPrimary))
        ));
    }

    #[test]
    fn empty_objects_may_share_a_position() {
        let b = Builder::new()
            .object(0x4001, 0, 0, [0; 12])
            .object(0x4002, 0, 0, [0; 12])
            .object(0x4004, 0, 4096, partition(1, 2));
        assert_eq!(read(&b.bytes()).unwrap().primary().unwrap().id, 3);
    }

    #[test]
    fn names_are_siftools() {
        assert_eq!(Arch(*b"02\0").name(), "amd64");
        assert_eq!(Arch(*b"13\0").name(), "loong64");
        for unknown in [*b"00\0", *b"14\0", *b"0a\0", *b"022", [0xff; 3]] {
            assert_eq!(Arch(unknown).name(), "unknown", "{unknown:?}");
        }
        assert_eq!(DataType(0x4004).name(), "FS");
        assert_eq!(DataType(0).name(), "Unknown");
        assert_eq!(PartType(2).name(), "*System");
    }
}
