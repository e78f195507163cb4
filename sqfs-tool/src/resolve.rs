//! Path lookup inside the image that follows symlinks the way the kernel would if the
//! image were mounted at `/` (an absolute target starts again at the image's root, never
//! the host's; `..` at the root stays there), giving up after as many symlinks as Linux
//! follows in one lookup.

use sqfs::{Archive, Inode};

/// Linux's limit on symlinks followed in one path lookup (MAXSYMLINKS, fs/namei.c).
pub const MAX_SYMLINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Image(#[from] sqfs::Error),
    #[error("too many levels of symbolic links")]
    TooManySymlinks,
}

/// The inode at `path` (relative paths start at the root), with every symlink on the way
/// followed, the last one too.
pub fn resolve(archive: &Archive, path: &[u8]) -> Result<Inode, ResolveError> {
    let root = archive.root()?;
    // The directories from the root to where the lookup is; the root is never popped.
    let mut stack = vec![root];
    // Components still to look up, last first: a symlink's target is pushed in front of
    // what remains.
    let mut todo: Vec<Vec<u8>> = components(path);
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        let dir = stack.last().expect("the root stays").clone();
        match part.as_slice() {
            b"." => continue,
            b".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        if !dir.is_dir() {
            return Err(sqfs::Error::NotADirectory.into());
        }
        let inode = archive.lookup(&dir, &part)?;
        match archive.read_link(&inode) {
            Ok(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ResolveError::TooManySymlinks);
                }
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                todo.extend(components(target));
            }
            Err(_) => stack.push(inode),
        }
    }
    Ok(stack.pop().expect("the root stays"))
}

/// The non-empty components of `path`, last first.
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}
