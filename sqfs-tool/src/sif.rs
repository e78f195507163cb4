//! `sqfs info` of a SIF: its global header and its objects, in the words and layout of
//! `siftool header` and `siftool list` (so the two can be compared line for line), then
//! which object the SquashFS below comes from.

use std::fmt::Write;

use sqfs::sif::{DataType, Object, Sif};

use crate::ls::format_unix_time;

/// What `sqfs info` prints before the superblock of an image found in a SIF.
pub fn describe(sif: &Sif) -> String {
    let mut out = header(sif);
    out.push_str(&list(sif));
    if let Ok(p) = sif.primary() {
        let _ = writeln!(
            out,
            "SquashFS below: primary partition, object {}, bytes {}-{}",
            p.id,
            p.offset,
            p.end()
        );
    }
    out
}

/// Go's zero `time.Time` as Unix seconds: siftool leaves such a time out.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// `siftool header`: "Key:" cells padded to the widest key plus one space.
fn header(sif: &Sif) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let script = sif.launch_script();
    let script = script.strip_suffix(b"\n").unwrap_or(script);
    if !script.is_empty() {
        rows.push(("Launch Script:", printable(script)));
    }
    let version = sif.version.iter().take_while(|&&b| b != 0).copied();
    rows.push(("Version:", printable(&version.collect::<Vec<u8>>())));
    if sif.arch.name() != "unknown" {
        rows.push(("Primary Architecture:", sif.arch.name().to_string()));
    }
    if sif.id != [0; 16] {
        rows.push(("ID:", uuid(&sif.id)));
    }
    for (key, time) in [
        ("Created At:", sif.created_at),
        ("Modified At:", sif.modified_at),
    ] {
        if time != GO_ZERO_TIME {
            rows.push((key, format!("{} +0000 UTC", format_unix_time(time))));
        }
    }
    rows.extend([
        ("Descriptors Free:", sif.descriptors_free.to_string()),
        ("Descriptors Total:", sif.descriptors_total.to_string()),
        ("Descriptors Offset:", sif.descriptors_offset.to_string()),
        ("Descriptors Size:", readable_size(sif.descriptors_size)),
        ("Data Offset:", sif.data_offset.to_string()),
        ("Data Size:", readable_size(sif.data_size)),
    ]);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}{v}\n"))
        .collect()
}

const RULE: &str = "------------------------------------------------------------------------------";

/// `siftool list`: one row per object in table order.
fn list(sif: &Sif) -> String {
    let mut out = format!(
        "{RULE}\n{:<4} {:<8} {:<8} {:<26} {}\n{RULE}\n",
        "ID", "|GROUP", "|LINK", "|SIF POSITION (start-end)", "|TYPE"
    );
    for o in &sif.objects {
        let group = match o.group() {
            0 => "|NONE    ".to_string(),
            g => format!("|{g:<7} "),
        };
        let link = match o.link() {
            (0, _) => "|NONE    ".to_string(),
            (id, true) => format!("|{id:<3} (G) "),
            (id, false) => format!("|{id:<7} "),
        };
        let position = format!("|{}-{} ", o.offset, o.end());
        let _ = writeln!(out, "{:<4} {group}{link}{position:<26} |{}", o.id, kind(o));
    }
    out
}

/// The TYPE column: the data type and, for some, what its descriptor says.
fn kind(o: &Object) -> String {
    let name = o.data_type.name();
    let (a, b) = o.extra_words();
    match o.data_type {
        DataType::PARTITION => {
            let p = o.partition().expect("a partition");
            format!(
                "{name} ({}/{}/{})",
                p.fs.name(),
                p.part.name(),
                p.arch.name()
            )
        }
        DataType::SIGNATURE => {
            let hash = match a {
                1 => "SHA-256",
                2 => "SHA-384",
                3 => "SHA-512",
                4 => "BLAKE2s-256",
                5 => "BLAKE2b-256",
                _ => "Unknown",
            };
            format!("{name} ({hash})")
        }
        DataType::CRYPTO_MESSAGE => {
            let format = match a {
                1 => "OpenPGP",
                2 => "PEM",
                _ => "Unknown",
            };
            let message = match b {
                0x100 => "Clear Signature",
                0x200 => "RSA-OAEP",
                _ => "Unknown",
            };
            format!("{name} ({format}/{message})")
        }
        DataType::SBOM => {
            const FORMATS: [&str; 8] = [
                "cyclonedx-json",
                "cyclonedx-xml",
                "github-json",
                "spdx-json",
                "spdx-rdf",
                "spdx-tag-value",
                "spdx-yaml",
                "syft-json",
            ];
            let format = usize::try_from(a)
                .ok()
                .and_then(|a| a.checked_sub(1))
                .and_then(|i| FORMATS.get(i))
                .unwrap_or(&"unknown");
            format!("{name} ({format})")
        }
        _ => name.to_string(),
    }
}

/// Sizes as siftool shows them: bytes below 1 KiB, else the nearest whole unit.
fn readable_size(size: u64) -> String {
    if size < 1024 {
        return format!("{size} B");
    }
    let (mut div, mut exp) = (1024u64, 0);
    let mut n = size / 1024;
    while n >= 1024 {
        div *= 1024;
        exp += 1;
        n /= 1024;
    }
    let unit = b"KMGTPE"[exp] as char;
    format!("{:.0} {unit}iB", (size as f64 / div as f64).round())
}

fn uuid(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Header text from the image, kept to one line and free of terminal controls.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<char>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_siftool_rounds_them() {
        assert_eq!(readable_size(0), "0 B");
        assert_eq!(readable_size(1023), "1023 B");
        assert_eq!(readable_size(1024), "1 KiB");
        assert_eq!(readable_size(28080), "27 KiB");
        assert_eq!(readable_size(4688), "5 KiB");
        assert_eq!(readable_size(1536), "2 KiB");
        assert_eq!(readable_size(1 << 20), "1 MiB");
        assert_eq!(readable_size(u64::MAX), "16 EiB");
    }

    /// Whatever a header holds (the parser checks offsets and counts, not times or text),
    /// describing it neither panics nor prints a terminal control.
    #[test]
    fn any_header_values_are_described() {
        use sqfs::sif::{Arch, Object};
        let mut extra = [0xffu8; 12];
        extra[4..8].copy_from_slice(&2i32.to_le_bytes());
        let object = |data_type: i32, extra: [u8; 12]| Object {
            index: 0,
            id: u32::MAX,
            group_raw: u32::MAX,
            link_raw: u32::MAX,
            data_type: DataType(data_type),
            offset: u64::MAX / 2,
            size: u64::MAX / 2,
            extra,
        };
        for (created, arch) in [(i64::MIN, *b"\xff\xff\xff"), (i64::MAX, *b"99\0")] {
            let sif = Sif {
                launch_script: [0x1b; 32],
                version: *b"01\0",
                arch: Arch(arch),
                id: [0xff; 16],
                created_at: created,
                modified_at: GO_ZERO_TIME,
                descriptors_free: u64::MAX,
                descriptors_total: u64::MAX,
                descriptors_offset: u64::MAX,
                descriptors_size: u64::MAX,
                data_offset: u64::MAX,
                data_size: u64::MAX,
                objects: (0x4000..0x400d).map(|t| object(t, extra)).collect(),
            };
            let text = describe(&sif);
            assert!(!text.contains('\x1b'), "{text}");
            assert!(!text.contains("Modified At:"), "{text}");
            assert!(
                text.contains("4294967295 |268435455 |268435455 (G) |9223372036854775807-"),
                "{text}"
            );
            assert!(text.contains("|FS (Unknown/*System/unknown)"), "{text}");
            assert!(text.contains("|Signature (Unknown)"), "{text}");
            assert_eq!(text.lines().count(), 10 + 3 + 13, "{text}");
        }
    }

    #[test]
    fn uuids_and_hostile_text() {
        let id: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        assert_eq!(uuid(&id), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(printable(b"a\tb\x1b[2J\n"), "a\\tb\\u{1b}[2J\\n");
    }
}
