//! A depth-first walk of the image tree that cannot loop: a directory met twice (a
//! hostile image pointing an entry at its own ancestor) is an error, and so is a depth
//! past any real tree.

use std::collections::HashSet;

use sqfs::{Archive, Inode};

/// Deeper than any tree mksquashfs can write from a real filesystem (PATH_MAX / 2).
const MAX_DEPTH: usize = 2048;

/// Called for each node with its path relative to the start and its inode.
pub type Visit<'v> = dyn FnMut(&[u8], &Inode) -> Result<(), String> + 'v;

/// Calls `visit(path, inode, depth)` for `start` and everything below it, parents first.
/// Paths are relative to `start` ("" for `start` itself) and joined with `/`.
pub fn walk(archive: &Archive, start: Inode, visit: &mut Visit) -> Result<(), String> {
    let mut seen = HashSet::new();
    walk_dir(archive, &mut Vec::new(), start, visit, &mut seen, 0)
}

fn walk_dir(
    archive: &Archive,
    path: &mut Vec<u8>,
    inode: Inode,
    visit: &mut Visit,
    seen: &mut HashSet<u32>,
    depth: usize,
) -> Result<(), String> {
    visit(path, &inode)?;
    if !inode.is_dir() {
        return Ok(());
    }
    if depth > MAX_DEPTH || !seen.insert(inode.number) {
        return Err(format!(
            "{}: directory loop in the image",
            String::from_utf8_lossy(path)
        ));
    }
    let entries = archive.read_dir(&inode).map_err(|e| describe(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| describe(path, e))?;
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&entry.name);
        let child = archive.entry_inode(&entry).map_err(|e| describe(path, e))?;
        walk_dir(archive, path, child, visit, seen, depth + 1)?;
        path.truncate(len);
    }
    Ok(())
}

pub fn describe(path: &[u8], e: sqfs::Error) -> String {
    if path.is_empty() {
        format!("/: {e}")
    } else {
        format!("{}: {e}", String::from_utf8_lossy(path))
    }
}

/// Looks a user-given path up, with the path in the error.
pub fn lookup(archive: &Archive, path: &str) -> Result<Inode, String> {
    archive
        .lookup_path(path)
        .map_err(|e| format!("{path}: {e}"))
}
