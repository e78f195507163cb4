//! `sqfs cat`: a file's bytes to standard output.

use std::io::Write;

use sqfs::Archive;

use crate::walk::lookup;

pub fn run(archive: &Archive, path: &str) -> Result<(), String> {
    let inode = lookup(archive, path)?;
    let data = archive
        .file_data(&inode)
        .map_err(|e| format!("{path}: {e}"))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0;
    loop {
        let n = archive
            .read_data(&data, offset, &mut buf)
            .map_err(|e| format!("{path}: {e}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("standard output: {e}"))?;
        offset += n as u64;
    }
    out.flush().map_err(|e| format!("standard output: {e}"))
}
