//! `sqfs info`: what the superblock says, in words (after the SIF around it, if any).

use std::path::Path;

use sqfs::flags;
use sqfs::Archive;

use crate::ls::format_time;

pub fn run(archive: &Archive, path: &Path) -> Result<(), String> {
    if let Some(sif) = archive.sif() {
        print!("{}", crate::sif::describe(sif));
    }
    let sb = archive.superblock();
    let set: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(bit, _)| sb.has(*bit))
        .map(|(_, name)| *name)
        .collect();
    println!("image:           {}", path.display());
    println!("version:         4.0");
    println!("compression:     {}", sb.compression.name());
    if let Some(opts) = archive.compressor_options() {
        println!("compressor opts: {} bytes: {:02x?}", opts.len(), opts);
    }
    println!("block size:      {}", sb.block_size);
    println!("bytes used:      {}", sb.bytes_used);
    println!(
        "created:         {} UTC ({})",
        format_time(sb.mkfs_time),
        sb.mkfs_time
    );
    println!("inodes:          {}", sb.inode_count);
    println!("fragments:       {}", sb.fragment_count);
    println!("ids:             {}", sb.id_count);
    println!("xattr ids:       {}", archive.xattr_id_count());
    println!(
        "exportable:      {}",
        if archive.has_export_table() {
            "yes"
        } else {
            "no"
        }
    );
    println!("flags:           {:#06x} {}", sb.flags, set.join(" "));
    println!("inode table:     {}", sb.inode_table_start);
    println!("directory table: {}", sb.directory_table_start);
    Ok(())
}
