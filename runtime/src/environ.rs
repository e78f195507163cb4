//! The command's environment: the host's, with Charliecloud's adjustments, then
//! `--set-env`/`--unset-env` applied strictly left to right.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

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
}

impl Environment {
    pub fn from_host() -> Self {
        Environment {
            vars: std::env::vars_os().collect(),
        }
    }

    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    pub fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        let (name, value) = (name.into(), value.into());
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    pub fn unset(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
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
    /// assignments made, as `NAME=VALUE`, for `-v`.
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
                    let value = if expand {
                        self.expand(value)
                    } else {
                        value.to_vec()
                    };
                    assigned.push(self.assign(name, value));
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
                        let value = if expand {
                            self.expand(value)
                        } else {
                            value.to_vec()
                        };
                        assigned.push(self.assign(var, value));
                    }
                }
            }
        }
        Ok(assigned)
    }

    /// Sets a variable from raw bytes; returns `NAME=VALUE` for the log.
    fn assign(&mut self, name: &[u8], value: Vec<u8>) -> String {
        let text = format!(
            "{}={}",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(&value)
        );
        self.set(OsString::from_vec(name.to_vec()), OsString::from_vec(value));
        text
    }

    /// Expands `$VAR` items of a `:`-separated list with their current values; an item
    /// whose variable is unset or empty is dropped (so `PATH=$NOPE:/bin` is `/bin`), other
    /// items stay as they are, empty ones too.
    fn expand(&self, value: &[u8]) -> Vec<u8> {
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
        out.join(&b':')
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
    fn no_expand_keeps_dollars() {
        let mut e = env(&[("A", "x")]);
        e.apply(&[EnvStep::Assign("B=$A".into())], false, &mut no_files)
            .unwrap();
        assert_eq!(e.get("B").unwrap(), "$A");
    }
}
