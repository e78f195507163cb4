//! `sqfs cat`: files' bytes to standard output, one after the other. Symlinks are followed
//! inside the image (see `resolve`), as `cat` would on the mounted image.

use std::io::Write;

use sqfs::Archive;

use crate::resolve::resolve;

pub fn run(archive: &Archive, paths: &[String]) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = vec![0u8; 1 << 20];
    for path in paths {
        cat_one(archive, path, &mut out, &mut buf)?;
    }
    out.flush().map_err(|e| format!("standard output: {e}"))
}

fn cat_one(
    archive: &Archive,
    path: &str,
    out: &mut impl Write,
    buf: &mut [u8],
) -> Result<(), String> {
    let inode = resolve(archive, path.as_bytes()).map_err(|e| format!("{path}: {e}"))?;
    let data = archive
        .file_data(&inode)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut offset = 0;
    loop {
        let n = archive
            .read_data(&data, offset, buf)
            .map_err(|e| format!("{path}: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("standard output: {e}"))?;
        offset += n as u64;
    }
}
