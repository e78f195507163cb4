//! The `sif` target: any bytes as a SIF file. The parser's promises are checked on what it
//! accepts (objects inside the file and its data section, unique ids, no overlaps, a
//! primary that is the one SquashFS PrimSys partition), and an image opened from a SIF
//! must be exactly its primary partition: the same bytes opened on their own give the same
//! walk, so nothing outside the partition can have been read.

use sqfs::sif::{self, DataType, FsType, PartType, Sif, DESCRIPTOR_SIZE, HEADER_SIZE};
use sqfs::{Archive, OpenOptions};

use super::{exercise, memfile, salt, TINY};

/// Runs the target on `data`.
pub fn run(data: &[u8]) {
    let detected = Sif::detect(&memfile(data));
    let prefix = &data[..data.len().min(sif::MAGIC_AT + sif::MAGIC.len())];
    match &detected {
        Ok(None) => assert!(!sif::is_sif(prefix), "a SIF magic went undetected"),
        Ok(Some(sif)) => {
            assert!(sif::is_sif(prefix));
            accepted(sif, data);
        }
        Err(_) => assert!(sif::is_sif(prefix), "only a SIF can be refused as one"),
    }
    let options = OpenOptions {
        offset: 0,
        cache_bytes: 4 << 20,
    };
    let Ok(archive) = Archive::open_file(memfile(data), &options) else {
        return;
    };
    let Ok(Some(sif)) = detected else {
        assert!(archive.sif().is_none());
        return;
    };
    let primary = sif
        .primary()
        .expect("an image opened from a SIF has a primary");
    assert_eq!(
        archive.sif().map(|s| s.objects.len()),
        Some(sif.objects.len())
    );
    assert!(archive.superblock().bytes_used <= primary.size);
    let alone = &data[primary.offset as usize..primary.end() as usize];
    let alone = Archive::open_file(memfile(alone), &options)
        .expect("the primary partition opens on its own as it did in the SIF");
    let salt = salt(data);
    let (a, b) = (exercise(&archive, salt), exercise(&alone, salt));
    assert_eq!(
        (a.nodes, a.dirs, a.files),
        (b.nodes, b.dirs, b.files),
        "the SIF's image and its partition alone differ"
    );
}

/// What must hold of any SIF the parser accepts.
fn accepted(sif: &Sif, data: &[u8]) {
    let len = data.len() as u64;
    assert!(sif.descriptors_total <= sif::MAX_DESCRIPTORS);
    assert!(sif.objects.len() as u64 <= sif.descriptors_total);
    assert!(sif.descriptors_offset >= HEADER_SIZE as u64);
    assert!(sif.descriptors_size >= sif.descriptors_total * DESCRIPTOR_SIZE as u64);
    assert!(sif.descriptors_offset + sif.descriptors_size <= sif.data_offset);
    assert!(sif.data_offset + sif.data_size <= len);
    let mut ids: Vec<u32> = sif.objects.iter().map(|o| o.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), sif.objects.len(), "object ids are unique");
    for o in &sif.objects {
        assert!(o.id != 0);
        assert!(
            o.offset >= sif.data_offset && o.end() <= len,
            "object {}",
            o.id
        );
    }
    let mut spans: Vec<(u64, u64)> = sif
        .objects
        .iter()
        .filter(|o| o.size > 0)
        .map(|o| (o.offset, o.end()))
        .collect();
    spans.sort_unstable();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "objects overlap"
    );
    let primaries = sif
        .objects
        .iter()
        .filter(|o| {
            o.partition()
                .is_some_and(|p| p.part == PartType::PRIMARY_SYSTEM)
        })
        .count();
    match sif.primary() {
        Ok(p) => {
            assert_eq!(primaries, 1);
            let part = p.partition().expect("a partition");
            assert_eq!(
                (part.part, part.fs),
                (PartType::PRIMARY_SYSTEM, FsType::SQUASHFS)
            );
        }
        Err(_) => assert!(
            primaries != 1
                || sif
                    .objects
                    .iter()
                    .any(|o| o.partition().is_some_and(
                        |p| p.part == PartType::PRIMARY_SYSTEM && p.fs != FsType::SQUASHFS
                    ))
        ),
    }
    let _ = sif.launch_script();
}

/// Descriptors in a seed's table: fewer than siftool's 48, to keep seeds small.
const CAPACITY: usize = 6;

/// A partition descriptor's type-specific field: filesystem, partition type, amd64.
fn partition(fs: FsType, part: PartType) -> [u8; 12] {
    let mut e = [0u8; 12];
    e[0..4].copy_from_slice(&fs.0.to_le_bytes());
    e[4..8].copy_from_slice(&part.0.to_le_bytes());
    e[8..11].copy_from_slice(b"02\0");
    e
}

/// A SIF laid out as siftool does (header, descriptor table, then the objects, partitions
/// aligned to 4 KiB), with a smaller table.
pub fn build(objects: &[(DataType, [u8; 12], &[u8])]) -> Vec<u8> {
    let data_offset = HEADER_SIZE + CAPACITY * DESCRIPTOR_SIZE;
    let mut out = vec![0u8; data_offset];
    out[..31].copy_from_slice(b"#!/usr/bin/env run-singularity\n");
    out[sif::MAGIC_AT..sif::MAGIC_AT + sif::MAGIC.len()].copy_from_slice(sif::MAGIC);
    out[42..45].copy_from_slice(b"01\0");
    out[45..48].copy_from_slice(b"02\0");
    out[48..64].copy_from_slice(&[0x5a; 16]);
    let put = |out: &mut Vec<u8>, at: usize, v: usize| {
        out[at..at + 8].copy_from_slice(&(v as i64).to_le_bytes())
    };
    put(&mut out, 80, CAPACITY - objects.len());
    put(&mut out, 88, CAPACITY);
    put(&mut out, 96, HEADER_SIZE);
    put(&mut out, 104, CAPACITY * DESCRIPTOR_SIZE);
    put(&mut out, 112, data_offset);
    for (i, (kind, extra, bytes)) in objects.iter().enumerate() {
        if *kind == DataType::PARTITION {
            out.resize(out.len().next_multiple_of(4096), 0);
        }
        let at = out.len();
        out.extend_from_slice(bytes);
        let d = HEADER_SIZE + i * DESCRIPTOR_SIZE;
        out[d..d + 4].copy_from_slice(&kind.0.to_le_bytes());
        out[d + 4] = 1;
        out[d + 5..d + 9].copy_from_slice(&(i as u32 + 1).to_le_bytes());
        out[d + 9..d + 13].copy_from_slice(&0xf000_0000u32.to_le_bytes());
        put(&mut out, d + 17, at);
        put(&mut out, d + 25, bytes.len());
        put(&mut out, d + 33, bytes.len());
        out[d + 201..d + 213].copy_from_slice(extra);
    }
    let end = out.len();
    put(&mut out, 120, end - data_offset);
    out
}

/// Seeds: each tiny image as the primary partition after a definition file and an overlay
/// partition (the next tiny image), with a data partition after it; and SIFs without a
/// usable primary.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let deffile = (DataType::DEFFILE, [0u8; 12], &b"Bootstrap: scratch\n"[..]);
    let raw = &b"raw data partition\n"[..];
    let mut out = Vec::new();
    for (i, &(name, offset, bytes)) in TINY.iter().enumerate() {
        let image = &bytes[offset as usize..];
        let (_, next_offset, next) = TINY[(i + 1) % TINY.len()];
        let overlay = &next[next_offset as usize..];
        let sif = build(&[
            deffile,
            (
                DataType::PARTITION,
                partition(FsType::SQUASHFS, PartType::OVERLAY),
                overlay,
            ),
            (
                DataType::PARTITION,
                partition(FsType::SQUASHFS, PartType::PRIMARY_SYSTEM),
                image,
            ),
            (
                DataType::PARTITION,
                partition(FsType::RAW, PartType::DATA),
                raw,
            ),
        ]);
        out.push((format!("{name}.sif"), sif));
    }
    let image = TINY[1].2;
    for (name, fs, part) in [
        ("no-primary", FsType::SQUASHFS, PartType::SYSTEM),
        ("ext3-primary", FsType::EXT3, PartType::PRIMARY_SYSTEM),
        (
            "encrypted-primary",
            FsType::ENCRYPTED_SQUASHFS,
            PartType::PRIMARY_SYSTEM,
        ),
    ] {
        out.push((
            name.to_string(),
            build(&[deffile, (DataType::PARTITION, partition(fs, part), image)]),
        ));
    }
    out
}
