//! squashfuse-rs(1), with every `-o` option from `fusefs::option_docs`.

use fusefs::option_docs;

use crate::page::{example, item, para, sub, Block, Page, Synopsis};

fn mount_options() -> Vec<Block> {
    let mut blocks = vec![para(
        "`-o` takes a comma-separated list of options, read as libfuse reads it (a \
         backslash makes the next comma part of a value, and `\\NNN` is the byte with octal \
         code NNN); it may be given several times. Of a pair such as `noexec` and `exec`, the \
         later one wins. An option that neither squashfuse_ll nor libfuse takes is an error.",
    )];
    for group in option_docs::groups() {
        blocks.push(sub(group.title));
        blocks.extend(
            group
                .options
                .into_iter()
                .map(|o| item(o.spelling, o.meaning)),
        );
    }
    blocks.push(sub("Refused"));
    blocks.extend(
        option_docs::REFUSED
            .iter()
            .map(|(name, why)| item(*name, *why)),
    );
    blocks
}

pub fn page(date: &str) -> Page {
    let cmd = fusefs::options::command();
    let source = format!("squashfuse-rs {}", cmd.get_version().unwrap_or_default());
    let mut page = Page::new(cmd, date, &source);
    page.synopsis = Synopsis::Forms(vec![(
        "squashfuse-rs".into(),
        "[-f] [-d] [-s] [-o OPT[,OPT...]]... IMAGE MOUNTPOINT".into(),
    )]);
    page.description = vec![
        para(
            "`squashfuse-rs` mounts the SquashFS image IMAGE, read-only, on the directory \
             MOUNTPOINT with FUSE. It takes squashfuse_ll's command line and options, so it \
             can stand in for it, and what it shows is what the kernel's own squashfs driver \
             shows for the same image: contents, sizes, modes, owners, times, link counts, \
             inode numbers, device numbers, symlink targets, extended attributes and the \
             order of directory entries.",
        ),
        para(
            "Without `-f` it returns only once the mount is ready (exit status 0) or has \
             failed (one line on standard error, exit status 1), so a script can use the \
             mount on its next line; a daemon goes on serving the mount in the background.",
        ),
        para(
            "As root, or inside a user namespace, it mounts with mount(2) on \
             `/dev/fuse`; as another user it mounts through fusermount3(1). It does not use \
             libfuse. Requests are served by one worker thread per CPU (`-s`: one); the \
             blocks ahead of a sequential reader are decompressed on other cores. A corrupt \
             block makes the reads of it fail with EIO, logged once; the rest of the image \
             stays readable.",
        ),
    ];
    page.sections = vec![
        ("MOUNT OPTIONS", mount_options()),
        (
            "UNMOUNTING",
            vec![para(
                "`fusermount3 -u` MOUNTPOINT (or umount(8) as root) unmounts, and the \
                     daemon exits. SIGTERM, SIGINT and SIGHUP sent to the daemon detach the \
                     mount at once, as `umount -l` does: files already open stay readable, \
                     and the daemon exits when the last is closed. With `-o timeout=N` the \
                     same happens after N idle seconds; with `-o auto_unmount` the mount is \
                     removed if the daemon dies.",
            )],
        ),
        (
            "EXIT STATUS",
            vec![
                item(
                    "0",
                    "The mount is ready (with `-f`: it was mounted, served and unmounted).",
                ),
                item(
                    "1",
                    "Anything failed, a bad command line or option included: one line on \
                     standard error, `squashfuse-rs:` and what went wrong. Nothing is left \
                     mounted; once the options were read, `f` is also written to \
                     `notify_pipe`.",
                ),
            ],
        ),
        (
            "EXAMPLES",
            vec![
                example(
                    "Mount, read, unmount:",
                    "squashfuse-rs image.sqfs /mnt/image\nls /mnt/image\nfusermount3 -u /mnt/image",
                ),
                example(
                    "An image 1 MiB into a file, every file owned by user and group 1000:",
                    "squashfuse-rs -o offset=1048576,uid=1000,gid=1000 disk.img mnt",
                ),
                example(
                    "In the foreground, unmounted after five idle minutes:",
                    "squashfuse-rs -f -o timeout=300 image.sqfs mnt",
                ),
            ],
        ),
        (
            "SEE ALSO",
            vec![para(
                "`squashfuse`(1), `fusermount3`(1), `mount.fuse3`(8), `sqfs`(1), `ch-run`(1)",
            )],
        ),
    ];
    page
}
