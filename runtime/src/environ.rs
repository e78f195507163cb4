//! The command's environment: the host's, with Charliecloud's adjustments, then
//! `--set-env`/`--unset-env` applied strictly left to right.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::bounded;
use crate::cli::EnvStep;
use crate::failure::Failure;

/// The most text all assignments of one run may make (each `NAME=VALUE` as set, in all):
/// lines that copy a big variable over and over (`B=$A`) would otherwise take any time,
/// and any memory for the `-v` log of them, from a file of a few kilobytes.
const ASSIGNED_LIMIT: usize = 4 * bounded::LIMIT;

/// glibc's `FNM_EXTMATCH`: ksh-style extended patterns, as Charliecloud matches with.
const FNM_EXTMATCH: libc::c_int = 1 << 5;

/// Reads a `--set-env` file: `Some(path)` on the host, `None` for `/ch/environment` in the
/// image; gives the name to use in messages and the bytes.
pub type FileReader<'a> = dyn FnMut(Option<&str>) -> Result<(String, Vec<u8>), Failure> + 'a;

/// An ordered environment (order kept so the command sees a stable `environ`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: Vec<(OsString, OsString)>,
    /// Where each name is in `vars` (its first place): a lookup by name costs the same
    /// however many variables a `--set-env` file made.
    index: HashMap<OsString, usize>,
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
            index: HashMap::new(),
            bytes: 0,
        };
        env.recount();
        env
    }

    /// The size and the index, after `vars` lost some variables.
    fn recount(&mut self) {
        self.bytes = self.vars.iter().map(|(k, v)| entry_bytes(k, v)).sum();
        self.index.clear();
        for (i, (k, _)) in self.vars.iter().enumerate() {
            self.index.entry(k.clone()).or_insert(i);
        }
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
        match self.index.get(&name) {
            Some(&i) => {
                let slot = &mut self.vars[i];
                self.bytes -= entry_bytes(&slot.0, &slot.1);
                slot.1 = value;
            }
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
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
    /// otherwise ask for any amount of memory; and the assignments, together, never make
    /// more than [`ASSIGNED_LIMIT`] of text.
    pub fn apply(
        &mut self,
        steps: &[EnvStep],
        expand: bool,
        read: &mut FileReader,
    ) -> Result<Vec<String>, Failure> {
        let mut assigned = Assigned::default();
        for step in steps {
            match step {
                EnvStep::Unset(glob) => self.unset_matching(glob),
                EnvStep::Assign(pair) => {
                    let (name, value) = split_pair(pair.as_bytes(), pair, 0)?;
                    let value = strip_quotes(value);
                    let text = self.assign(name, value, expand, pair)?;
                    assigned.push(text, pair)?;
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
                        let text = self.assign(var, value, expand, &location)?;
                        assigned.push(text, &location)?;
                    }
                }
            }
        }
        Ok(assigned.texts)
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
        let parts = || -> Box<dyn Iterator<Item = &[u8]> + '_> {
            if expand {
                Box::new(self.expansion(value))
            } else {
                Box::new(std::iter::once(value))
            }
        };
        let (count, bytes) = parts().fold((0usize, 0usize), |(n, len), p| (n + 1, len + p.len()));
        let value_len = bytes + count.saturating_sub(1);
        let name = OsString::from_vec(name.to_vec());
        let replaced = self.get_os(&name).map_or(0, |old| entry_bytes(&name, old));
        if self.bytes - replaced + name.len() + value_len + 2 > bounded::LIMIT {
            return Err(Failure::Runtime(format!(
                "can't set variable: environment larger than {}: {location}",
                bounded::LIMIT_TEXT
            )));
        }
        // Sized by what was checked against the limit just above.
        let mut joined = Vec::with_capacity(value_len);
        for (i, part) in parts().enumerate() {
            if i > 0 {
                joined.push(b':');
            }
            joined.extend_from_slice(part);
        }
        let value = joined;
        let text = format!(
            "{}={}",
            name.to_string_lossy(),
            String::from_utf8_lossy(&value)
        );
        self.set(name, OsString::from_vec(value));
        Ok(text)
    }

    fn get_os(&self, name: &OsStr) -> Option<&OsStr> {
        self.index.get(name).map(|&i| self.vars[i].1.as_os_str())
    }

    /// The items of a `:`-separated list with `$VAR` items replaced by their current values;
    /// an item whose variable is unset or empty is dropped (so `PATH=$NOPE:/bin` is `/bin`),
    /// other items stay as they are, empty ones too. The caller joins them with `:`.
    fn expansion<'a>(&'a self, value: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        value.split(|&b| b == b':').filter_map(|item| {
            match item.strip_prefix(b"$").filter(|name| !name.is_empty()) {
                Some(name) => std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| self.get(n))
                    .map(|v| v.as_bytes())
                    .filter(|v| !v.is_empty()),
                None => Some(item),
            }
        })
    }
}

/// The assignments made so far, as `NAME=VALUE` for the log, and their size.
#[derive(Default)]
struct Assigned {
    texts: Vec<String>,
    bytes: usize,
}

impl Assigned {
    /// Keeps `text`, unless the assignments would then pass [`ASSIGNED_LIMIT`].
    fn push(&mut self, text: String, location: &str) -> Result<(), Failure> {
        self.bytes += text.len();
        if self.bytes > ASSIGNED_LIMIT {
            return Err(Failure::Runtime(format!(
                "can't set variable: more than {} MiB assigned: {location}",
                ASSIGNED_LIMIT >> 20
            )));
        }
        self.texts.push(text);
        Ok(())
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

    /// A file that copies one big variable over and over (`B=$A`, each line 5 bytes) is
    /// refused once its assignments pass [`ASSIGNED_LIMIT`]: before, each line kept another
    /// copy for the `-v` log (1,000 lines of a 4 MiB variable asked for 4 GiB).
    #[test]
    fn copying_a_big_variable_over_and_over_is_refused() {
        let mut file = format!("A={}\n", "x".repeat(1024)).into_bytes();
        for _ in 0..12 {
            file.extend_from_slice(b"A=$A:$A\n");
        }
        let a_len = 1024 * (1 << 12) + (1 << 12) - 1;
        let copies = 20;
        for _ in 0..copies {
            file.extend_from_slice(b"B=$A\n");
        }
        let mut read = |_: Option<&str>| Ok(("f".to_string(), file.clone()));
        let steps = [EnvStep::File {
            path: None,
            nul: false,
        }];
        let mut e = env(&[]);
        let err = e.apply(&steps, true, &mut read).unwrap_err();
        // Lines 1 to 13 make A (about 8 MiB of assignments in all); each `B=$A` adds
        // a_len + 2 more; the first that passes 64 MiB is refused.
        let made_a: usize = (0..=12).map(|k| 2 + 1024 * (1 << k) + (1 << k) - 1).sum();
        let fits = (ASSIGNED_LIMIT - made_a) / (a_len + 2);
        assert!(fits < copies);
        assert_eq!(
            err.message(),
            format!(
                "can't set variable: more than 64 MiB assigned: f:{}",
                13 + fits + 1
            )
        );
    }

    /// Every variable is found by name at once: a 16 MiB file of distinct names (1.6
    /// million of them) took hours when each assignment searched the ones before it.
    #[test]
    fn many_variables_are_set_in_linear_time() {
        let mut file = Vec::new();
        let mut n = 0;
        while file.len() + 10 <= bounded::LIMIT - 1024 {
            file.extend_from_slice(format!("V{n:07}=\n").as_bytes());
            n += 1;
        }
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut read = |_: Option<&str>| Ok(("f".to_string(), file.clone()));
            let steps = [EnvStep::File {
                path: None,
                nul: false,
            }];
            let mut e = env(&[]);
            let r = e.apply(&steps, true, &mut read).map(|_| e.pairs().len());
            let _ = done.send(r.map_err(|e| e.message().to_string()));
        });
        // About a second; the quadratic search took hours.
        let set = result
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("1.6 million assignments within 2 minutes");
        assert_eq!(set.unwrap(), n);
    }

    #[test]
    fn no_expand_keeps_dollars() {
        let mut e = env(&[("A", "x")]);
        e.apply(&[EnvStep::Assign("B=$A".into())], false, &mut no_files)
            .unwrap();
        assert_eq!(e.get("B").unwrap(), "$A");
    }
}
