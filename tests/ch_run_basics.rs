//! `ch-run` as a Charliecloud user sees it: exit codes, messages, the container's contents,
//! environment, users, binds and options. Runs as an unprivileged user (see container.rs);
//! every test ends by checking that nothing was left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use e2e_tests::container::{can_run_containers, test_image, test_uid, user_name, Scratch};
use e2e_tests::sys::is_root;

/// `ch-run -m MNT IMAGE -- sh -c SCRIPT` with extra options first.
fn sh(s: &Scratch, options: &[&str], script: &str) -> e2e_tests::container::Outcome {
    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    let mut args: Vec<&str> = vec!["-m", &mnt];
    args.extend_from_slice(options);
    args.extend_from_slice(&[&image, "--", "sh", "-c", script]);
    s.run(&args)
}

/// The one stderr line of a failed run, checked for ch-run's format.
fn error_line(out: &e2e_tests::container::Outcome) -> String {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {out:?}");
    let (prefix, message) = lines[0]
        .split_once(": error: ")
        .expect("ch-run[PID]: error:");
    assert!(
        prefix.starts_with("ch-run[") && prefix.ends_with(']'),
        "{out:?}"
    );
    message.to_string()
}

#[test]
fn runs_the_command_and_returns_its_status() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("status");
    let out = sh(&s, &[], "cat /data/hello; echo $CH_RUNNING");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from the image\nWeird Al Yankovic\n");
    assert_eq!(out.stderr, "");
    assert_eq!(sh(&s, &[], "exit 42").code, 42);
    assert_eq!(sh(&s, &[], "kill -TERM $$").code, 128 + 15);
    assert_eq!(sh(&s, &[], "kill -KILL $$").code, 128 + 9);
    // The command sees the image as / and the usual host trees.
    let out = sh(
        &s,
        &[],
        "ls /; test -e /proc/self/status && test -e /dev/null && test -d /sys/kernel && echo ok",
    );
    assert!(
        !out.stdout.contains("busybox.sqfs") && out.stdout.ends_with("ok\n"),
        "{out:?}"
    );
    assert!(out.stdout.contains("data\n"), "{out:?}");
    s.assert_clean();
}

#[test]
fn the_command_starts_at_the_containers_root() {
    if !can_run_containers() {
        return;
    }
    // ch-run runs in a host directory (the scratch directory); the command must not.
    let s = Scratch::new("start-dir");
    let out = sh(&s, &[], "pwd -P; ls -d ./data");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "/\n./data\n", "{out:?}");
    let out = sh(&s, &["-c", "/data"], "pwd -P");
    assert_eq!(out.stdout, "/data\n", "{out:?}");
    s.assert_clean();
}

#[test]
fn failures_are_one_line_with_charliecloud_exit_codes() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("failures");
    let out = sh(&s, &["-c", "/nonexistent"], "true");
    assert_eq!(out.code, 31);
    assert_eq!(
        error_line(&out),
        "can't cd to /nonexistent: No such file or directory"
    );

    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    let out = s.run(&["-m", &mnt, &image, "--", "no-such-command"]);
    assert_eq!(out.code, 49);
    assert_eq!(
        error_line(&out),
        "can't execve(2): no-such-command: No such file or directory"
    );
    let out = s.run(&["-m", &mnt, &image, "--", "/data/hello"]);
    assert_eq!(out.code, 49);
    assert_eq!(
        error_line(&out),
        "can't execve(2): /data/hello: Permission denied"
    );

    let out = s.run(&["--bogus", &image, "true"]);
    assert_eq!(out.code, 64, "{out:?}");
    error_line(&out);
    let out = s.run(&[&image]);
    assert_eq!(out.code, 64);
    assert_eq!(error_line(&out), "IMAGE and/or CMD not specified");

    let missing = s.dir.join("missing.sqfs").to_string_lossy().into_owned();
    let out = s.run(&[&missing, "--", "true"]);
    assert_eq!(out.code, 31);
    assert_eq!(
        error_line(&out),
        format!("can't stat: {missing}: No such file or directory")
    );

    let not_squash = s.dir.join("not.sqfs");
    std::fs::write(&not_squash, "just text").unwrap();
    let not_squash = not_squash.to_string_lossy().into_owned();
    let out = s.run(&[&not_squash, "--", "true"]);
    assert_eq!(out.code, 31);
    assert_eq!(
        error_line(&out),
        format!("unknown image type: {not_squash}")
    );

    // SquashFS magic, then garbage: refused before anything is mounted.
    let bad = s.dir.join("bad.sqfs");
    let mut bytes = std::fs::read(&test_image().sqfs).unwrap();
    bytes.truncate(4096);
    bytes[40..96].fill(0xff);
    std::fs::write(&bad, bytes).unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let out = s.run(&[&bad, "--", "true"]);
    assert_eq!(out.code, 31);
    assert!(
        error_line(&out).starts_with(&format!("can't open SquashFS: {bad}: ")),
        "{out:?}"
    );

    let out = s.run_env(&["-m", "", &image, "true"], &[]);
    assert_eq!(error_line(&out), "mount point can't be empty string");
    let out = s.run(&["-m", "/nonexistent-mnt", &image, "true"]);
    assert_eq!(
        error_line(&out),
        "can't stat mount point: /nonexistent-mnt: No such file or directory"
    );
    let out = s.run(&["--unset-env=", &image, "true"]);
    assert_eq!(
        error_line(&out),
        "--unset-env: GLOB must have non-zero length"
    );
    let out = s.run(&["--feature=nonsense"]);
    assert_eq!(
        (out.code, error_line(&out)),
        (31, "unknown feature: nonsense".to_string())
    );
    s.assert_clean();
}

#[test]
fn user_must_be_set() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("nouser");
    let image = test_image().sqfs_arg();
    let mut cmd = s.command(&[&image, "--", "true"], &[]);
    // env -i … USER=… : drop USER by overriding the command's environment at the start.
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let program = cmd.get_program().to_owned();
    let args: Vec<String> = args
        .into_iter()
        .filter(|a| !a.starts_with("USER="))
        .collect();
    cmd = std::process::Command::new(program);
    cmd.args(&args);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(31));
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("error: $USER not set\n"));
}

#[test]
fn informational_options() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("info");
    let out = s.run(&["--help"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with("Usage: ch-run [OPTION...] IMAGE -- CMD [ARG...]"),
        "{out:?}"
    );
    for option in [
        "--bind",
        "--cd",
        "--set-env",
        "--unset-env",
        "--join-ct",
        "--write-fake",
        "--private-tmp",
    ] {
        assert!(out.stdout.contains(option), "{option} missing from --help");
    }
    let out = s.run(&["--usage"]);
    assert!(
        out.code == 0 && out.stdout.starts_with("Usage: ch-run"),
        "{out:?}"
    );
    let out = s.run(&["-V"]);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, env!("CARGO_PKG_VERSION"))
    );
    for feature in ["squash", "extglob", "overlayfs"] {
        assert_eq!(
            s.run(&[&format!("--feature={feature}")]).code,
            0,
            "{feature}"
        );
    }
}

#[test]
fn environment_follows_charliecloud() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("env");
    let envfile = s.dir.join("env.txt");
    std::fs::write(
        &envfile,
        "QUOTED='a b'\nLIST=$HOST_A:x:$UNSET_VAR\n\nEMPTY=\n",
    )
    .unwrap();
    std::fs::set_permissions(&envfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let envfile = envfile.to_string_lossy().into_owned();
    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    let setfile = format!("--set-env={envfile}");
    let out = s.run_env(
        &[
            "-m",
            &mnt,
            "--unset-env=HOST_*",
            "--set-env=HOST_B=again",
            &setfile,
            "--set-env",
            "--unset-env=+(DROP|ALSO)_ME",
            &image,
            "--",
            "env",
        ],
        &[
            ("HOST_A", "a"),
            ("HOST_B", "b"),
            ("DROP_ME", "1"),
            ("ALSO_ME", "2"),
            ("KEEP_ME", "3"),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let vars: Vec<&str> = out.stdout.lines().collect();
    let has = |v: &str| vars.contains(&v);
    assert!(has("CH_RUNNING=Weird Al Yankovic"), "{vars:?}");
    assert!(has("QUOTED=a b"), "{vars:?}");
    // HOST_A was unset before the file expanded it: the item is dropped.
    assert!(has("LIST=x"), "{vars:?}");
    assert!(has("EMPTY="), "{vars:?}");
    assert!(has("HOST_B=again"), "{vars:?}");
    assert!(has("FROM_IMAGE=image value"), "{vars:?}");
    assert!(has("PATH=/opt/image:/usr/bin:/usr/sbin:/bin"), "{vars:?}");
    assert!(
        has("KEEP_ME=3") && !has("DROP_ME=1") && !has("ALSO_ME=2"),
        "{vars:?}"
    );
    assert!(!vars.iter().any(|v| v.starts_with("TMPDIR=")), "{vars:?}");

    let out = s.run_env(
        &[
            "-m",
            &mnt,
            "--env-no-expand",
            "--set-env=X=$HOME:y",
            &image,
            "--",
            "env",
        ],
        &[],
    );
    assert!(out.stdout.lines().any(|l| l == "X=$HOME:y"), "{out:?}");
    let out = s.run(&["-m", &mnt, "-v", "--set-env=X=1", &image, "--", "true"]);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.ends_with("]: environment: X=1")),
        "{out:?}"
    );

    let bad = s.dir.join("bad.txt");
    std::fs::write(&bad, "OK=1\nnodelimiter\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let out = s.run(&[&format!("--set-env={bad}"), &image, "true"]);
    assert_eq!(out.code, 31);
    assert_eq!(
        error_line(&out),
        format!("can't parse variable: no delimiter: {bad}:2")
    );
    let out = s.run(&["--set-env=/nonexistent-env", &image, "true"]);
    assert_eq!(
        error_line(&out),
        "can't open: /nonexistent-env: No such file or directory"
    );
    s.assert_clean();
}

#[test]
fn users_and_groups() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("users");
    let uid = test_uid();
    let out = sh(&s, &[], "id -u; id -g; cat /etc/passwd /etc/group");
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], uid.to_string());
    let user = user_name();
    assert!(
        lines.contains(&"root:x:0:0:root:/root:/bin/sh"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"nobody:x:65534:65534:nobody:/:/bin/false"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{user}:x:{uid}:"))),
        "{lines:?}"
    );
    assert!(lines.contains(&"nogroup:x:65534:"), "{lines:?}");

    let out = sh(&s, &["-u", "0", "-g", "0"], "id -u; id -g");
    assert_eq!(out.stdout, "0\n0\n", "{out:?}");
    let out = sh(
        &s,
        &["-v", "-u", "4000321", "-g", "4000321"],
        "id -un; id -gn",
    );
    assert_eq!(out.stdout, "charlie\ncharliegroup\n", "{out:?}");
    assert!(
        out.stderr
            .contains("UID 4000321 not found; using dummy info"),
        "{out:?}"
    );
    // --no-passwd: the image's own files.
    let out = sh(&s, &["--no-passwd"], "cat /etc/passwd");
    assert_eq!(out.stdout, "imageuser:x:4242:4242::/:/bin/sh\n");
    s.assert_clean();
}

#[test]
fn the_image_is_read_only_and_inert() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("inert");
    let out = sh(&s, &[], "touch /data/new 2>&1; echo rc=$?");
    // (The image is the user's own, so this is the read-only mount speaking, not modes.)
    assert!(
        out.stdout.contains("Read-only file system") && out.stdout.contains("rc=1"),
        "{out:?}"
    );
    // Setuid-root binary: runs as the user. Device node: unusable.
    let out = sh(
        &s,
        &[],
        "/bin/busybox-suid id -u; cat /devnode 2>&1; grep NoNewPrivs /proc/self/status",
    );
    let uid = test_uid();
    assert!(out.stdout.starts_with(&format!("{uid}\n")), "{out:?}");
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
    assert!(out.stdout.contains("NoNewPrivs:\t1"), "{out:?}");
    let out = sh(&s, &[], "grep ' / ' /proc/mounts");
    let root = out.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        root.contains("fuse.squashfuse") && root.contains("ro,nosuid,nodev"),
        "{out:?}"
    );
    s.assert_clean();
}

#[test]
fn tmp_home_and_host_files() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("tmphome");
    // /tmp is the host's $TMPDIR.
    let out = sh(&s, &[], "echo from-container > /tmp/f; cat /etc/hosts");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(s.tmp.join("f")).unwrap(),
        "from-container\n"
    );
    std::fs::remove_file(s.tmp.join("f")).unwrap();
    assert_eq!(out.stdout, std::fs::read_to_string("/etc/hosts").unwrap());
    // -t: a private /tmp.
    let out = sh(&s, &["-t"], "echo x > /tmp/private; ls /tmp");
    assert_eq!(out.stdout, "private\n", "{out:?}");
    assert!(std::fs::read_dir(&s.tmp).unwrap().next().is_none());
    // --home: host $HOME at /home/$USER, and $HOME points there.
    std::fs::write(s.home.join("note"), "at home\n").unwrap();
    std::fs::set_permissions(s.home.join("note"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let user = user_name();
    let out = sh(&s, &["--home"], "echo $HOME; cat ~/note; ls /home");
    assert_eq!(
        out.stdout,
        format!("/home/{user}\nat home\n{user}\n"),
        "{out:?}"
    );
    let image = test_image().sqfs_arg();
    let out = s.run_env(&["--home", &image, "--", "true"], &[("HOME", "")]);
    assert_eq!(out.code, 31);
    assert_eq!(error_line(&out), "--home failed: $HOME not set");
    s.assert_clean();
}

#[test]
fn binds() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("binds");
    let src = s.dir.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), "bound\n").unwrap();
    if is_root() {
        std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&src)
            .status()
            .unwrap();
    }
    let src = src.to_string_lossy().into_owned();
    let spec = format!("{src}:/mnt");
    let out = sh(&s, &["-b", &spec], "cat /mnt/file");
    assert_eq!(out.stdout, "bound\n", "{out:?}");
    // Through a relative symlink inside the image: fine.
    let spec = format!("{src}:/data-link");
    let out = sh(&s, &["-b", &spec], "cat /data/file");
    assert_eq!(out.stdout, "bound\n", "{out:?}");

    let msg = |spec: &str| {
        let out = sh(&s, &["-b", spec], "true");
        assert_eq!(out.code, 31, "{out:?}");
        error_line(&out)
    };
    assert_eq!(msg(":/mnt"), "--bind: no source provided");
    assert_eq!(msg(&format!("{src}:")), "--bind: no destination provided");
    assert_eq!(msg(&format!("{src}:/")), "--bind: destination can't be /");
    assert_eq!(
        msg(&format!("{src}:mnt")),
        "--bind: destination must be absolute"
    );
    assert_eq!(
        msg("/nonexistent-src:/mnt"),
        "can't bind: source not found: /nonexistent-src"
    );
    assert_eq!(
        msg(&format!("{src}:/nope")),
        "can't bind: destination not found: /nope"
    );
    // Symlinks in the image that lead out of it are refused, not followed onto the host.
    for link in ["/escape-abs", "/escape-up"] {
        let m = msg(&format!("{src}:{link}"));
        assert!(
            m.starts_with(&format!("can't bind: {link} not subdirectory of ")),
            "{m}"
        );
    }
    s.assert_clean();
}

#[test]
fn directory_images_and_writes() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("dirimg");
    // A writable copy of the tree, owned by the test user.
    let copy = s.dir.join("img");
    std::process::Command::new("cp")
        .args(["-a"])
        .arg(&test_image().tree)
        .arg(&copy)
        .status()
        .unwrap();
    if is_root() {
        std::process::Command::new("chown")
            .args(["-R", e2e_tests::container::TEST_USER])
            .arg(&copy)
            .status()
            .unwrap();
    }
    let img = copy.to_string_lossy().into_owned();
    let out = s.run(&[
        &img,
        "--",
        "sh",
        "-c",
        "cat /data/hello; cat /proc/self/uid_map; touch /data/x 2>/dev/null || echo ro",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("hello from the image\n") && out.stdout.ends_with("ro\n"),
        "{out:?}"
    );
    let mnt = s.mnt_arg();
    let out = s.run(&["-m", &mnt, &img, "--", "true"]);
    assert!(
        out.stderr
            .ends_with("]: warning: --mount invalid with directory image, ignoring\n"),
        "{out:?}"
    );
    let out = s.run(&["-q", "-m", &mnt, &img, "--", "true"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, ""),
        "-q keeps warnings quiet"
    );
    let out = s.run(&["-w", &img, "--", "sh", "-c", "echo w > /data/x"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(copy.join("data/x")).unwrap(), "w\n");
    // -W on SquashFS: writes land in a tmpfs and vanish with the container.
    let out = sh(
        &s,
        &["-W"],
        "echo w > /data/hello && cat /data/hello && mkdir -p /new/dir && echo ok",
    );
    assert_eq!(out.stdout, "w\nok\n", "{out:?}");
    assert_eq!(
        sh(&s, &[], "cat /data/hello").stdout,
        "hello from the image\n"
    );
    s.assert_clean();
}

#[test]
fn images_by_name_in_storage() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("storage");
    let img_dir = s.dir.join("storage/img");
    std::fs::create_dir_all(&img_dir).unwrap();
    std::os::unix::fs::symlink(&test_image().sqfs, img_dir.join("example.com+5050%busybox"))
        .unwrap();
    let storage = s.dir.join("storage").to_string_lossy().into_owned();
    let mnt = s.mnt_arg();
    let out = s.run(&[
        "-m",
        &mnt,
        "-s",
        &storage,
        "example.com:5050/busybox",
        "--",
        "cat",
        "/data/hello",
    ]);
    assert_eq!(out.stdout, "hello from the image\n", "{out:?}");
    let out = s.run_env(
        &[
            "-m",
            &mnt,
            "example.com:5050/busybox",
            "--",
            "cat",
            "/data/hello",
        ],
        &[("CH_IMAGE_STORAGE", &storage)],
    );
    assert_eq!(out.stdout, "hello from the image\n", "{out:?}");
    s.assert_clean();
}

#[test]
fn verbose_messages_and_default_mount_point() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("verbose");
    let image = test_image().sqfs_arg();
    let out = s.run(&["-v", &image, "--", "true"]);
    assert_eq!(out.code, 0, "{out:?}");
    let user = user_name();
    for line in [
        format!("newroot: {image}"),
        format!("using default mount point: /var/tmp/{user}.ch/mnt"),
        "executing: true".to_string(),
    ] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.ends_with(&format!("]: {line}"))),
            "{line}: {out:?}"
        );
    }
    assert!(Path::new(&format!("/var/tmp/{user}.ch/mnt")).is_dir());
    s.assert_clean();
}

#[test]
fn refuses_to_run_setuid() {
    if !can_run_containers() || !is_root() {
        e2e_tests::skip::skip("needs root to make a setuid copy");
        return;
    }
    let s = Scratch::new("setuid");
    let copy = s.dir.join("ch-run-setuid");
    std::fs::copy(e2e_tests::sys::built_binary("ch-run"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let image = test_image().sqfs_arg();
    let out = std::process::Command::new("runuser")
        .args([
            "-u",
            e2e_tests::container::TEST_USER,
            "--",
            "env",
            "USER=chtest",
        ])
        .arg(&copy)
        .args([&image, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(31));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must not be setuid"),
        "{out:?}"
    );
}
