//! `sqfs ls` of an image whose names and link targets hold terminal controls: to a terminal
//! they are shown escaped (ESC, BEL and newlines would retitle the window, clear the screen
//! or forge lines), to a pipe they are the image's bytes, for scripts.

mod support;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use support::Scratch;

const TITLE: &[u8] = b"a\x1b]0;pwned\x07b";
const TWO_LINES: &[u8] = b"two\nlines";
const CLEAR: &[u8] = b"\x1b[2J";

fn image(s: &Scratch) -> std::path::PathBuf {
    let tree = s.0.join("tree");
    std::fs::create_dir(&tree).unwrap();
    let at = |name: &[u8]| tree.join(std::ffi::OsStr::from_bytes(name));
    std::fs::write(at(TITLE), "").unwrap();
    std::fs::write(at(TWO_LINES), "").unwrap();
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(CLEAR), tree.join("link")).unwrap();
    let image = s.0.join("image.sqfs");
    let out = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&image)
        .args(["-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("mksquashfs (squashfs-tools) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// `sqfs ls -lR IMAGE` with a terminal for its output (util-linux's script(1)).
fn ls_on_terminal(image: &Path) -> Vec<u8> {
    let command = format!("{} ls -lR {}", env!("CARGO_BIN_EXE_sqfs"), image.display());
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .expect("script (util-linux) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_terminal_gets_names_escaped_and_a_pipe_the_bytes() {
    let s = Scratch::new("ls-terminal");
    let image = image(&s);
    let shown = ls_on_terminal(&image);
    assert!(
        !shown.contains(&0x1b),
        "ESC reached the terminal: {shown:?}"
    );
    assert!(
        !shown.contains(&0x07),
        "BEL reached the terminal: {shown:?}"
    );
    let text = String::from_utf8(shown).unwrap();
    // The terminal turns each "\n" into "\r\n": four entries, four lines.
    assert_eq!(text.lines().count(), 4, "{text:?}");
    assert!(text.contains(r"/a\u{1b}]0;pwned\u{7}b"), "{text}");
    assert!(text.contains(r"/link -> \u{1b}[2J"), "{text}");
    assert!(text.contains(r"/two\nlines"), "{text}");

    let piped = Command::new(env!("CARGO_BIN_EXE_sqfs"))
        .arg("ls")
        .arg(&image)
        .output()
        .unwrap();
    assert!(piped.status.success());
    let mut want = Vec::new();
    for name in [TITLE, b"link", TWO_LINES] {
        want.extend_from_slice(name);
        want.push(b'\n');
    }
    assert_eq!(piped.stdout, want);
}
