//! What `-e` and `-ef` leave out, in mksquashfs's three ways: exact paths (the default),
//! shell wildcards (`-wildcards`) and POSIX extended regular expressions (`-regex`).
//!
//! Facts taken from mksquashfs 4.5.1 (its behaviour on this machine, and its source): a
//! pattern is split at `/` and matched one component per directory level, from the
//! source's root; a wildcard component is matched by `fnmatch` with `FNM_PATHNAME |
//! FNM_PERIOD | FNM_EXTMATCH` (a leading dot must be matched explicitly; `@(a|b)`,
//! `!(x)`, … work), a regex component by `regexec` (so it matches anywhere in the name
//! unless anchored with `^`/`$`); a pattern starting with `... ` may match at any depth;
//! patterns starting with `/`, `./` or `../` are refused. When a pattern's last component
//! matches, the entry and everything under it are left out.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::path::{Component, Path, PathBuf};

use super::error::{Error, Result};

/// How `-e` paths are read (`-wildcards`, `-regex`, neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    #[default]
    Paths,
    Wildcards,
    Regex,
}

/// The entries to leave out.
pub enum Excludes {
    /// Paths relative to the source, `a/b`.
    Paths(HashSet<Vec<u8>>),
    Patterns(Vec<Pattern>),
}

pub struct Pattern {
    /// `... ` in front: the components may match at any depth, not only from the root.
    anywhere: bool,
    components: Vec<Matcher>,
}

enum Matcher {
    Wildcard(CString),
    Regex(Regex),
}

impl Excludes {
    /// The excludes `given` (as written after `-e` or in `-ef` files) name in the tree
    /// under `source`. An absolute exact path counts if it lies under `source` (as given
    /// or with its symlinks resolved); others name nothing in the tree and are ignored,
    /// as mksquashfs ignores them.
    pub fn new(given: &[PathBuf], syntax: Syntax, source: &Path) -> Result<Excludes> {
        if syntax == Syntax::Paths {
            return Ok(Excludes::Paths(exact_paths(given, source)));
        }
        let patterns = given
            .iter()
            .map(|p| Pattern::new(p.as_os_str().as_encoded_bytes(), syntax))
            .collect::<Result<Vec<_>>>()?;
        Ok(Excludes::Patterns(patterns))
    }

    /// Whether the entry at `path` (relative to the source, components joined by `/`)
    /// is left out, given that no directory above it was.
    pub fn excludes(&self, path: &[u8]) -> bool {
        match self {
            Excludes::Paths(set) => !set.is_empty() && set.contains(path),
            Excludes::Patterns(patterns) if patterns.is_empty() => false,
            Excludes::Patterns(patterns) => {
                let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
                patterns.iter().any(|p| p.ends_at(&parts))
            }
        }
    }

    /// Whether `parts` or a directory above it is left out (for tar members, which come
    /// in any order rather than from a walk that stops at an excluded directory).
    pub fn excludes_any_prefix(&self, parts: &[&[u8]]) -> bool {
        match self {
            Excludes::Paths(set) if set.is_empty() => false,
            Excludes::Patterns(patterns) if patterns.is_empty() => false,
            Excludes::Paths(set) => {
                (1..=parts.len()).any(|n| set.contains(&parts[..n].join(&b'/')))
            }
            Excludes::Patterns(patterns) => {
                (1..=parts.len()).any(|n| patterns.iter().any(|p| p.ends_at(&parts[..n])))
            }
        }
    }
}

fn exact_paths(given: &[PathBuf], source: &Path) -> HashSet<Vec<u8>> {
    let bases: Vec<PathBuf> = [std::path::absolute(source).ok(), source.canonicalize().ok()]
        .into_iter()
        .flatten()
        .map(|p| normal(&p))
        .collect();
    let mut set = HashSet::new();
    for path in given {
        let relative = if path.is_absolute() {
            let path = normal(path);
            match bases.iter().find_map(|b| path.strip_prefix(b).ok()) {
                Some(rel) => rel.to_path_buf(),
                None => continue,
            }
        } else {
            normal(path)
        };
        if !relative.as_os_str().is_empty() {
            set.insert(relative.as_os_str().as_encoded_bytes().to_vec());
        }
    }
    set
}

/// `path` without `.` components, repeated or trailing slashes (not resolving `..`, which
/// a symlink could make mean something else).
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

impl Pattern {
    fn new(text: &[u8], syntax: Syntax) -> Result<Pattern> {
        let shown = String::from_utf8_lossy(text);
        let (anywhere, rest) = match text.strip_prefix(b"... ") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if rest.starts_with(b"/") || rest.starts_with(b"./") || rest.starts_with(b"../") {
            return Err(Error::Options(format!(
                "exclude {shown:?}: /, ./ and ../ prefixed patterns can't be used with \
                 -wildcards or -regex (name paths relative to the source)"
            )));
        }
        let components = rest
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(|c| {
                let c = CString::new(c).map_err(|_| {
                    Error::Options(format!("exclude {shown:?}: a NUL byte in the pattern"))
                })?;
                Ok(match syntax {
                    Syntax::Regex => Matcher::Regex(
                        Regex::new(&c)
                            .map_err(|why| Error::Options(format!("exclude {shown:?}: {why}")))?,
                    ),
                    _ => Matcher::Wildcard(c),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if components.is_empty() {
            return Err(Error::Options(format!(
                "exclude {shown:?}: an empty pattern"
            )));
        }
        Ok(Pattern {
            anywhere,
            components,
        })
    }

    /// Whether the pattern's components match the last components of `parts`, starting
    /// at its root unless the pattern may start anywhere.
    fn ends_at(&self, parts: &[&[u8]]) -> bool {
        let k = self.components.len();
        if parts.len() < k || (!self.anywhere && parts.len() != k) {
            return false;
        }
        let tail = &parts[parts.len() - k..];
        self.components.iter().zip(tail).all(|(m, name)| {
            // A name from a directory listing has no NUL; if it had, nothing matches.
            CString::new(*name).is_ok_and(|name| m.matches(&name))
        })
    }
}

impl Matcher {
    fn matches(&self, name: &CStr) -> bool {
        match self {
            Matcher::Wildcard(pattern) => {
                // SAFETY: both are NUL-terminated strings that outlive the call.
                unsafe { libc::fnmatch(pattern.as_ptr(), name.as_ptr(), FNMATCH_FLAGS) == 0 }
            }
            Matcher::Regex(regex) => regex.is_match(name),
        }
    }
}

/// glibc's `<fnmatch.h>` values (the libc crate names the first two only).
const FNM_EXTMATCH: libc::c_int = 1 << 5;
const FNMATCH_FLAGS: libc::c_int = libc::FNM_PATHNAME | libc::FNM_PERIOD | FNM_EXTMATCH;

/// A POSIX extended regular expression compiled by the C library, as mksquashfs uses
/// (the `regex` crate's syntax differs in corners users of mksquashfs rely on, such as
/// its bracket expressions and longest-match rules).
struct Regex(Box<libc::regex_t>);

impl Regex {
    fn new(pattern: &CStr) -> std::result::Result<Regex, String> {
        // SAFETY: regex_t is plain data that regcomp fills in; all-zero is a valid
        // starting value.
        let mut compiled: Box<libc::regex_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `compiled` is valid for writes and `pattern` is NUL-terminated.
        let code = unsafe {
            libc::regcomp(
                &mut *compiled,
                pattern.as_ptr(),
                libc::REG_EXTENDED | libc::REG_NOSUB,
            )
        };
        if code == 0 {
            return Ok(Regex(compiled));
        }
        let mut message = [0u8; 256];
        // SAFETY: regerror writes at most `message.len()` bytes, NUL-terminated.
        unsafe { libc::regerror(code, &*compiled, message.as_mut_ptr().cast(), message.len()) };
        let message = CStr::from_bytes_until_nul(&message)
            .map_or_else(|_| "bad regular expression".into(), |m| m.to_string_lossy());
        Err(message.into_owned())
    }

    fn is_match(&self, name: &CStr) -> bool {
        // SAFETY: `self.0` was compiled by regcomp and not freed; with REG_NOSUB no
        // match positions are written.
        unsafe { libc::regexec(&*self.0, name.as_ptr(), 0, std::ptr::null_mut(), 0) == 0 }
    }
}

impl Drop for Regex {
    fn drop(&mut self) {
        // SAFETY: compiled by regcomp (only successful ones are kept), freed once.
        unsafe { libc::regfree(&mut *self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(syntax: Syntax, given: &[&str]) -> Excludes {
        let given: Vec<PathBuf> = given.iter().map(PathBuf::from).collect();
        Excludes::new(&given, syntax, Path::new("/src/tree")).unwrap()
    }

    #[test]
    fn exact_paths_are_below_the_source() {
        let Excludes::Paths(set) = excludes(
            Syntax::Paths,
            &["a/b", "./c/", "/src/tree/d/e", "/elsewhere/f", "g//h", "."],
        ) else {
            panic!("exact paths")
        };
        let mut got: Vec<String> = set
            .iter()
            .map(|p| String::from_utf8(p.clone()).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, ["a/b", "c", "d/e", "g/h"]);
    }

    #[test]
    fn wildcards_match_one_level_each_from_the_root() {
        let e = excludes(Syntax::Wildcards, &["*.gz", "a/*/c", "@(x|y)"]);
        assert!(e.excludes(b"top.gz"));
        assert!(!e.excludes(b"a/top.gz"), "anchored at the root");
        assert!(
            !e.excludes(b".hidden.gz"),
            "a leading dot is matched explicitly"
        );
        assert!(e.excludes(b"a/b/c"));
        assert!(!e.excludes(b"a/b/d/c"));
        assert!(e.excludes(b"x") && e.excludes(b"y") && !e.excludes(b"z"));
    }

    #[test]
    fn three_dots_match_at_any_depth() {
        let e = excludes(Syntax::Wildcards, &["... *.gz", "... b/c"]);
        assert!(e.excludes(b"x.gz") && e.excludes(b"a/b/x.gz"));
        assert!(e.excludes(b"b/c") && e.excludes(b"a/b/c"));
        assert!(!e.excludes(b"a/b") && !e.excludes(b"a/c"));
        assert!(e.excludes_any_prefix(&[b"q", b"b", b"c", b"file"]));
    }

    #[test]
    fn regexes_search_each_name() {
        let e = excludes(Syntax::Regex, &["gz$", "^a$/^[bc]"]);
        assert!(e.excludes(b"x.gz") && !e.excludes(b"d/x.gz"));
        assert!(e.excludes(b"a/b1") && e.excludes(b"a/c") && !e.excludes(b"a/d"));
        assert!(!e.excludes(b"ab/b"));
    }

    #[test]
    fn rooted_patterns_and_bad_regexes_are_refused() {
        for bad in ["/abs", "./rel", "../up", "... /abs"] {
            let given = [PathBuf::from(bad)];
            assert!(Excludes::new(&given, Syntax::Wildcards, Path::new("/s")).is_err());
        }
        let given = [PathBuf::from("a(")];
        let err = Excludes::new(&given, Syntax::Regex, Path::new("/s"));
        assert!(matches!(err, Err(Error::Options(m)) if m.contains("a(")));
    }
}
