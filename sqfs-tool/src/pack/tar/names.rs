//! Member names made into paths below the image's root. A tar is untrusted: a name is
//! taken apart at every `/`, `.` and empty components are dropped (so `/etc/x`, `./etc/x`
//! and `etc//x/` are all `etc/x`, as GNU tar extracts them), and a `..` component, a NUL
//! byte, a component longer than a directory entry can hold or a name past
//! [`MAX_PATH`] is refused: no name can reach outside the root or grow the tree without
//! bound.

/// The longest member name taken (PAX and GNU long names may be longer than any path a
/// system can open; 64 KiB is 16 times PATH_MAX).
pub const MAX_PATH: usize = 64 << 10;

/// The longest name of one entry (SquashFS's limit, as Linux's NAME_MAX is 255).
const MAX_NAME: usize = 256;

/// Why a name was refused.
pub fn check(name: &[u8]) -> Result<Vec<&[u8]>, String> {
    if name.len() > MAX_PATH {
        return Err(format!(
            "a name of {} bytes (at most {MAX_PATH} are taken)",
            name.len()
        ));
    }
    if name.contains(&0) {
        return Err("a NUL byte in its name".into());
    }
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("a `..` in its name (refused: it would leave the root)".into()),
            p if p.len() > MAX_NAME => {
                return Err(format!(
                    "a name component of {} bytes (at most {MAX_NAME})",
                    p.len()
                ))
            }
            p => parts.push(p),
        }
    }
    Ok(parts)
}

/// `parts` joined with `/`, as excludes and hard links name them.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(name: &str) -> Result<String, String> {
        check(name.as_bytes()).map(|p| String::from_utf8(join(&p)).unwrap())
    }

    #[test]
    fn names_are_made_relative_to_the_root() {
        assert_eq!(joined("./etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(joined("/etc//passwd/").unwrap(), "etc/passwd");
        assert_eq!(joined("a/./b/.").unwrap(), "a/b");
        assert_eq!(joined("./").unwrap(), "");
        assert_eq!(joined("/").unwrap(), "");
        assert_eq!(joined("..a/b..").unwrap(), "..a/b..");
    }

    #[test]
    fn names_that_leave_the_root_or_cannot_be_stored_are_refused() {
        for bad in ["../x", "a/../../x", "/..", "a/..", "..", "./../etc"] {
            assert!(joined(bad).unwrap_err().contains(".."), "{bad}");
        }
        assert!(check(b"a\0b").is_err());
        assert!(check(&[b'x'; 257]).is_err());
        assert!(check(&[b'x'; 256]).is_ok());
        let long: Vec<u8> = b"a/".repeat(MAX_PATH / 2 + 1);
        assert!(check(&long).is_err());
    }
}
