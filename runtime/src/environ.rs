//! The command's environment: the host's, with Charliecloud's adjustments, then
//! `--set-env`/`--unset-env` applied strictly left to right.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::bounded;
use crate::cli::EnvStep;
use crate::failure::Failure;

/// glibc's `FNM_EXTMATCH`: ksh-style extended patterns, as Charliecloud matches with.
const FNM_EXTMATCH: libc::c_int = 1 << 5;

/// Reads a `--set-env` file: `Some(path)` on the host, `None` for `/ch/environment` in the
/// image; gives the name to use in messages and the bytes.
pub type FileReader<'a> = dyn FnMut(Option<&str>) -> Result<(String, Vec<u8>), Failure> + 'a;

/// An ordered environment (order kept so the command sees a stable `environ`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: Vec<(OsString, OsString)>,
    /// Its size as the command's `environ` would hold it (`NAME=VALUE` and a NUL each).
    bytes: usize,
}

/// What one variable takes in `environ`.
fn entry_bytes(name: &OsStr, value: &OsStr) -> usize {
    name.len() + value.len() + 2
}

impl Environment {
    pub fn from_host() -> Self {
        Self::from_pairs(std::env::vars_os())
    }

    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut env = Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            bytes: 0,
        };
        env.recount();
        env
    }

    fn recount(&mut self) {
        self.bytes = self.vars.iter().map(|(k, v)| entry_bytes(k, v)).sum();
    }

    /// The environment's size in `environ`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.get_os(OsStr::new(name))
    }

    pub fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        let (name, value) = (name.into(), value.into());
        self.bytes += entry_bytes(&name, &value);
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => {
                self.bytes -= entry_bytes(&slot.0, &slot.1);
                slot.1 = value;
            }
            None => self.vars.push((name, value)),
        }
    }

    pub fn unset(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
        self.recount();
    }

    /// Removes every variable whose name matches the extended glob.
    pub fn unset_matching(&mut self, glob: &str) {
        let Ok(pattern) = CString::new(glob) else {
            return;
        };
        self.vars.retain(|(k, _)| {
            let Ok(name) = CString::new(k.as_bytes()) else {
                return true;
            };
            // SAFETY: two NUL-terminated strings.
            unsafe { libc::fnmatch(pattern.as_ptr(), name.as_ptr(), FNM_EXTMATCH) != 0 }
        });
        self.recount();
    }

    pub fn pairs(&self) -> &[(OsString, OsString)] {
        &self.vars
    }

    /// Charliecloud's fixed changes, made before `--set-env`: `HOME` under `--home`, `/bin`
    /// on `PATH`, no `TMPDIR` (the container's /tmp is the host's `$TMPDIR` already).
    /// Returns warnings to print.
    pub fn adjust_for_container(&mut self, home_user: Option<&str>) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(user) = home_user {
            self.set("HOME", format!("/home/{user}"));
        }
        match self.get("PATH").map(|p| p.as_bytes().to_vec()) {
            None => warnings.push("$PATH not set".to_string()),
            Some(path) => {
                // Charliecloud's test, kept as it is: starts with "/bin" or has ":/bin".
                let has_bin = path.starts_with(b"/bin") || path.windows(5).any(|w| w == b":/bin");
                if !has_bin {
                    let mut path = path;
                    path.extend_from_slice(b":/bin");
                    self.set("PATH", OsString::from_vec(path));
                }
            }
        }
        self.unset("TMPDIR");
        warnings
    }

    /// Set last, so no `--set-env` or `--unset-env` can change it.
    pub fn mark_running(&mut self) {
        self.set("CH_RUNNING", "Weird Al Yankovic");
    }

    /// Applies `--set-env`/`--unset-env` steps in order. `read` fetches a file's bytes:
    /// `Some(path)` on the host, `None` for `/ch/environment` in the image. Returns the
    /// assignments made, as `NAME=VALUE`, for `-v`. The environment never grows past
    /// [`bounded::LIMIT`]: a few lines that each double a variable (`A=$A:$A`) would
    /// otherwise ask for any amount of memory.
    pub fn apply(
        &mut self,
        steps: &[EnvStep],
        expand: bool,
        read: &mut FileReader,
    ) -> Result<Vec<String>, Failure> {
        let mut assigned = Vec::new();
        for step in steps {
            match step {
                EnvStep::Unset(glob) => self.unset_matching(glob),
                EnvStep::Assign(pair) => {
                    let (name, value) = split_pair(pair.as_bytes(), pair, 0)?;
                    let value = strip_quotes(value);
                    assigned.push(self.assign(name, value, expand, pair)?);
                }
                EnvStep::File { path, nul } => {
                    let (name, bytes) = read(path.as_deref())?;
                    let delimiter = if *nul { 0 } else { b'\n' };
                    for (i, line) in bytes.split(|&b| b == delimiter).enumerate() {
                        if line.is_empty() {
                            continue;
                        }
                        let (var, value) = split_pair(line, &name, i + 1)?;
                        let value = if *nul { value } else { strip_quotes(value) };
                        let location = format!("{name}:{}", i + 1);
                        assigned.push(self.assign(var, value, expand, &location)?);
                    }
                }
            }
        }
        Ok(assigned)
    }

    /// Sets a variable from raw bytes, `$VAR` items expanded if `expand`; returns
    /// `NAME=VALUE` for the log. Refused, before anything is allocated for it, if the
    /// environment would pass [`bounded::LIMIT`]; `location` says where the assignment was.
    fn assign(
        &mut self,
        name: &[u8],
        value: &[u8],
        expand: bool,
        location: &str,
    ) -> Result<String, Failure> {
        let parts = if expand {
            self.expansion(value)
        } else {
            vec![value]
        };
        let value_len =
            parts.iter().map(|p| p.len()).sum::<usize>() + parts.len().saturating_sub(1);
        let name = OsString::from_vec(name.to_vec());
        let replaced = self.get_os(&name).map_or(0, |old| entry_bytes(&name, old));
        if self.bytes - replaced + name.len() + value_len + 2 > bounded::LIMIT {
            return Err(Failure::Runtime(format!(
                "can't set variable: environment larger than {}: {location}",
                bounded::LIMIT_TEXT
            )));
        }
        let value = parts.join(&b':');
        let text = format!(
            "{}={}",
            name.to_string_lossy(),
            String::from_utf8_lossy(&value)
        );
        self.set(name, OsString::from_vec(value));
        Ok(text)
    }

    fn get_os(&self, name: &OsStr) -> Option<&OsStr> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The items of a `:`-separated list with `$VAR` items replaced by their current values;
    /// an item whose variable is unset or empty is dropped (so `PATH=$NOPE:/bin` is `/bin`),
    /// other items stay as they are, empty ones too. The caller joins them with `:`.
    fn expansion<'a>(&'a self, value: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out: Vec<&[u8]> = Vec::new();
        for item in value.split(|&b| b == b':') {
            match item.strip_prefix(b"$").filter(|name| !name.is_empty()) {
                Some(name) => {
                    let found = std::str::from_utf8(name)
                        .ok()
                        .and_then(|n| self.get(n))
                        .map(|v| v.as_bytes())
                        .filter(|v| !v.is_empty());
                    if let Some(v) = found {
                        out.push(v);
                    }
                }
                None => out.push(item),
            }
        }
        out
    }
}

/// `NAME=VALUE` with Charliecloud's messages; `line` 0 means a command-line argument.
fn split_pair<'a>(
    line: &'a [u8],
    source: &str,
    lineno: usize,
) -> Result<(&'a [u8], &'a [u8]), Failure> {
    let location = if lineno == 0 {
        source.to_string()
    } else {
        format!("{source}:{lineno}")
    };
    let Some(eq) = line.iter().position(|&b| b == b'=') else {
        return Err(Failure::Runtime(format!(
            "can't parse variable: no delimiter: {location}"
        )));
    };
    if eq == 0 {
        return Err(Failure::Runtime(format!(
            "can't parse variable: empty name: {location}"
        )));
    }
    Ok((&line[..eq], &line[eq + 1..]))
}

/// One pair of single quotes around the whole value is removed.
fn strip_quotes(value: &[u8]) -> &[u8] {
    if value.len() >= 2 && value.starts_with(b"'") && value.ends_with(b"'") {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().map(|&(k, v)| (k, v)))
    }

    fn no_files(_: Option<&str>) -> Result<(String, Vec<u8>), Failure> {
        unreachable!()
    }

    #[test]
    fn container_adjustments() {
        let mut e = env(&[("PATH", "/usr/bin"), ("TMPDIR", "/scratch"), ("HOME", "/h")]);
        assert!(e.adjust_for_container(None).is_empty());
        e.mark_running();
        assert_eq!(e.get("PATH").unwrap(), "/usr/bin:/bin");
        assert_eq!(e.get("TMPDIR"), None);
        assert_eq!(e.get("HOME").unwrap(), "/h");
        assert_eq!(e.get("CH_RUNNING").unwrap(), "Weird Al Yankovic");
        for (path, adjusted) in [
            ("/bin:/usr/bin", "/bin:/usr/bin"),
            ("/opt/bin:/bin/", "/opt/bin:/bin/"),
            ("", ":/bin"),
            ("/usr/bin:/binx", "/usr/bin:/binx"),
        ] {
            let mut e = env(&[("PATH", path)]);
            e.adjust_for_container(Some("alice"));
            assert_eq!(e.get("PATH").unwrap(), adjusted);
            assert_eq!(e.get("HOME").unwrap(), "/home/alice");
        }
        let mut e = env(&[]);
        assert_eq!(e.adjust_for_container(None), ["$PATH not set"]);
        assert_eq!(e.get("PATH"), None);
    }

    #[test]
    fn set_and_unset_apply_left_to_right_with_extglobs() {
        let mut e = env(&[
            ("FOO", "1"),
            ("FOOBAR", "2"),
            ("BAZ", "3"),
            ("PATH", "/bin"),
        ]);
        let steps = [
            EnvStep::Unset("FOO*".into()),
            EnvStep::Assign("FOO=new".into()),
            EnvStep::Assign("PATH=/opt:$PATH:$NOPE::$".into()),
            EnvStep::Unset("!(FOO|PATH)".into()),
        ];
        e.apply(&steps, true, &mut no_files).unwrap();
        assert_eq!(e, env(&[("PATH", "/opt:/bin::$"), ("FOO", "new")]));
    }

    #[test]
    fn files_strip_one_pair_of_quotes_and_report_lines() {
        let mut e = env(&[("A", "x")]);
        let mut read = |p: Option<&str>| {
            assert_eq!(p, Some("f"));
            Ok((
                "f".to_string(),
                b"B='quoted value'\n\nC=$A:y:$NONE\nD=''x''\nE=\n".to_vec(),
            ))
        };
        let steps = [EnvStep::File {
            path: Some("f".into()),
            nul: false,
        }];
        e.apply(&steps, true, &mut read).unwrap();
        assert_eq!(e.get("B").unwrap(), "quoted value");
        assert_eq!(e.get("C").unwrap(), "x:y");
        assert_eq!(e.get("D").unwrap(), "'x'");
        assert_eq!(e.get("E").unwrap(), "");
        let mut bad = |_: Option<&str>| Ok(("f".to_string(), b"OK=1\nnodelim\n".to_vec()));
        let err = e.apply(&steps, true, &mut bad).unwrap_err();
        assert_eq!(err.message(), "can't parse variable: no delimiter: f:2");
        let mut bad = |_: Option<&str>| Ok(("f".to_string(), b"=v\n".to_vec()));
        let err = e.apply(&steps, true, &mut bad).unwrap_err();
        assert_eq!(err.message(), "can't parse variable: empty name: f:1");
        let mut blank = |_: Option<&str>| Ok(("f".to_string(), b"A=1\n \n".to_vec()));
        let err = e.apply(&steps, true, &mut blank).unwrap_err();
        assert_eq!(err.message(), "can't parse variable: no delimiter: f:2");
        let err = e
            .apply(&[EnvStep::Assign("=x".into())], true, &mut no_files)
            .unwrap_err();
        assert_eq!(err.message(), "can't parse variable: empty name: =x");
    }

    #[test]
    fn nul_delimited_files_keep_quotes_and_newlines() {
        let mut e = env(&[]);
        let mut read = |p: Option<&str>| {
            assert_eq!(p, None);
            Ok((
                "/ch/environment".to_string(),
                b"A='x'\0B=two\nlines\0\0".to_vec(),
            ))
        };
        let steps = [EnvStep::File {
            path: None,
            nul: true,
        }];
        let assigned = e.apply(&steps, true, &mut read).unwrap();
        assert_eq!(e.get("A").unwrap(), "'x'");
        assert_eq!(e.get("B").unwrap(), "two\nlines");
        assert_eq!(assigned, ["A='x'", "B=two\nlines"]);
    }

    #[test]
    fn the_environment_stays_within_the_limit() {
        let mut e = env(&[("A", "x")]);
        assert_eq!(e.bytes(), 4);
        e.set("A", "xyz");
        e.set("B", "");
        assert_eq!(e.bytes(), 6 + 3);
        e.unset_matching("B");
        assert_eq!(e.bytes(), 6);
        // Each line doubles A: 2^40 bytes after 40 lines, refused once past the limit.
        let mut bomb = b"A=x\n".to_vec();
        for _ in 0..40 {
            bomb.extend_from_slice(b"A=$A:$A\n");
        }
        let mut read = |_: Option<&str>| Ok(("f".to_string(), bomb.clone()));
        let steps = [EnvStep::File {
            path: None,
            nul: false,
        }];
        let err = e.apply(&steps, true, &mut read).unwrap_err();
        // A is 2^k - 1 bytes after line k; with "A=" and a NUL, line 24 passes 16 MiB.
        assert_eq!(
            err.message(),
            "can't set variable: environment larger than 16 MiB: f:24"
        );
        assert!(e.bytes() <= bounded::LIMIT);
        assert_eq!(e.get("A").unwrap().len(), (1 << 23) - 1);
        // Without expansion, the lines are short.
        e.apply(&steps, false, &mut read).unwrap();
        assert_eq!(e.get("A").unwrap(), "$A:$A");
    }

    #[test]
    fn no_expand_keeps_dollars() {
        let mut e = env(&[("A", "x")]);
        e.apply(&[EnvStep::Assign("B=$A".into())], false, &mut no_files)
            .unwrap();
        assert_eq!(e.get("B").unwrap(), "$A");
    }
}
