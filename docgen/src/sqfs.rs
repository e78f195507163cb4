//! sqfs(1) and a page per command: sqfs-info(1), sqfs-ls(1), sqfs-cat(1), sqfs-extract(1).

use crate::page::{example, item, para, Page, Synopsis};

/// `sqfs ls [OPTIONS] <IMAGE> [PATH]`, as `--help` shows it, split after the name.
fn form(cmd: &clap::Command) -> (String, String) {
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_string();
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let rest = usage
        .strip_prefix(&name)
        .unwrap_or(&usage)
        .trim()
        .to_string();
    (name, rest)
}

fn exit_status() -> Vec<crate::page::Block> {
    vec![
        item("0", "Success."),
        item(
            "1",
            "Anything failed, a bad command line included: one line on standard error, \
             `sqfs: error:` and what went wrong.",
        ),
    ]
}

fn see_also(command: &str) -> Vec<crate::page::Block> {
    let mut pages = vec!["sqfs(1)".to_string()];
    pages.extend(
        ["info", "ls", "cat", "extract", "pack"]
            .iter()
            .filter(|c| **c != command)
            .map(|c| format!("sqfs-{c}(1)")),
    );
    pages.extend(
        [
            "unsquashfs(1)",
            "mksquashfs(1)",
            "squashfuse-rs(1)",
            "ch-run(1)",
        ]
        .map(String::from),
    );
    if command.is_empty() {
        pages.remove(0);
    }
    vec![para(
        pages
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", "),
    )]
}

/// sqfs(1): what the tool is for, its commands, exit status, examples.
fn main_page(cmd: &clap::Command, date: &str, source: &str) -> Page {
    let mut page = Page::new(cmd.clone(), date, source);
    page.synopsis = Synopsis::Forms(
        page.cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(form)
            .collect(),
    );
    page.description = vec![
        para(
            "`sqfs` reads SquashFS 4.0 images, the compressed read-only file systems that \
             mksquashfs(1) and gensquashfs(1) make, without mounting them and without \
             privileges: it prints what an image is made of (`info`), lists its directories \
             (`ls`), writes its files to standard output (`cat`), and extracts it, or a \
             subtree of it, into a directory (`extract`), as `unsquashfs -d` does.",
        ),
        para(
            "Images compressed with gzip, lzma, lzo, xz (with any BCJ filter), lz4 and zstd \
             are read, as are uncompressed ones. An image that starts inside a larger file \
             (a SIF file, an AppImage, `mksquashfs -o`) is read with `--offset` and the byte \
             offset it starts at.",
        ),
        para(
            "An image is taken as hostile input: a damaged one gives an error, never a crash \
             or an allocation as large as a field says; `extract` writes nothing outside its \
             destination directory, whatever the image holds.",
        ),
        para(
            "`pack` makes an image of a directory tree, as mksquashfs(1) does and with its \
             option names, compressing on every core; with SOURCE_DATE_EPOCH set, the same \
             tree gives the same image, byte for byte, whatever the number of threads.",
        ),
        para("Each command has its own page, with its options: `sqfs-info`(1), and so on."),
    ];
    page.sections = vec![
        ("EXIT STATUS", exit_status()),
        (
            "EXAMPLES",
            vec![
                example(
                    "What an image is: compressor, block size, sizes, counts, flags:",
                    "sqfs info image.sqfs",
                ),
                example(
                    "List a directory the way ls -l does:",
                    "sqfs ls -l image.sqfs /usr/bin",
                ),
                example(
                    "Print a file of the image:",
                    "sqfs cat image.sqfs /etc/os-release",
                ),
                example(
                    "Extract /usr only, to out/usr, with four decompressor threads:",
                    "sqfs extract -p 4 image.sqfs out /usr",
                ),
                example(
                    "List an image that starts 1 MiB into a file:",
                    "sqfs ls --offset 1048576 disk.img",
                ),
                example(
                    "Pack a directory with zstd:",
                    "sqfs pack rootfs image.sqfs -comp zstd",
                ),
            ],
        ),
        ("SEE ALSO", see_also("")),
    ];
    page
}

/// What each command's page says besides its `--help` text.
fn command_page(cmd: &clap::Command, date: &str, source: &str) -> Page {
    let name = cmd.get_name().to_string();
    let mut page = Page::new(cmd.clone(), date, source);
    page.synopsis = Synopsis::Forms(vec![form(&page.cmd)]);
    page.clap_description = true;
    let offset = para(
        "With `--offset N`, the image starts N bytes into the file (a SIF file, an \
         AppImage, `mksquashfs -o`).",
    );
    let (description, examples) = match name.as_str() {
        "info" => (
            vec![
                para(
                    "It prints the superblock's fields in a form meant to be read: the \
                     compressor, the block size, the bytes used, the creation time, the \
                     numbers of inodes, fragments and ids, the flags, and where the tables \
                     start.",
                ),
                offset,
            ],
            vec![example("", "sqfs info image.sqfs")],
        ),
        "ls" => (
            vec![
                para(
                    "PATH is a path inside the image (default: its root). A directory is \
                     listed in the image's order, which is sorted by name; any other entry \
                     is listed alone. `-l` prints the mode, the link count, the owner and \
                     group ids, the size (or a device's major and minor numbers), the \
                     modification time (UTC) and the name, with `->` and the target for a \
                     symlink. `-R` lists every directory below PATH too, each entry with its \
                     full path.",
                ),
                offset,
            ],
            vec![
                example("", "sqfs ls -l image.sqfs /etc"),
                example("Every path in the image:", "sqfs ls -R image.sqfs"),
            ],
        ),
        "cat" => (
            vec![offset],
            vec![example(
                "Copy a file out of an image:",
                "sqfs cat image.sqfs /etc/passwd > passwd",
            )],
        ),
        "extract" => (
            vec![
                para(
                    "DIR is created if it does not exist. As root, files get the owners, \
                     device nodes and extended attributes the image has; as another user \
                     they are that user's, and what needs root is skipped, as unsquashfs \
                     skips it: device nodes (with a warning that counts them) and \
                     attributes other than user.*. Modes and modification times are the \
                     image's; hard links stay hard links, holes stay holes. At the end, \
                     unless `-q`, a line tells how many files, directories, symlinks, \
                     devices, FIFOs, sockets and hard links were made, as unsquashfs(1) \
                     tells it.",
                ),
                para(
                    "Every entry is created relative to its parent directory, never through \
                     a symlink that `extract` did not create itself: an image whose symlink \
                     points out of DIR cannot make it write there. unsquashfs's spellings \
                     `-processors`, `-force`, `-quiet` and `-no-progress` are taken too.",
                ),
                offset,
            ],
            vec![
                example("Extract the whole image:", "sqfs extract image.sqfs rootfs"),
                example(
                    "Extract /usr/bin into rootfs/usr/bin, over what is there:",
                    "sqfs extract -f image.sqfs rootfs /usr/bin",
                ),
            ],
        ),
        "pack" => (
            vec![
                para(
                    "Every file type is stored: \
                     regular files (holes as holes, a file past 4 GiB as it is), directories, \
                     symlinks (never followed), devices, FIFOs and sockets; hard links stay \
                     one inode; extended attributes of the user, trusted and security \
                     namespaces are stored (others are left out with a warning). Files of the \
                     same content are stored once, and file tails are packed into fragments, \
                     as mksquashfs does by default.",
                ),
                para(
                    "The image is written under a temporary name beside IMAGE and renamed \
                     to IMAGE only when complete: a failed or interrupted pack leaves no \
                     image, and the old IMAGE, if any, as it was. A file or directory the \
                     user cannot read is packed as mksquashfs packs it, with a warning: a \
                     file as an empty file, a directory not at all. A file that changes size \
                     while it is read, or an entry replaced while the tree is walked, is an \
                     error naming it.",
                ),
                para(
                    "mksquashfs's spellings with one dash are taken (`-comp`, \
                     `-Xcompression-level`, `-Xbcj`, `-Xhc`, `-processors`, `-all-root`, \
                     `-force-uid`, `-force-gid`, `-no-xattrs`, `-no-fragments`, \
                     `-always-use-fragments`, `-no-duplicates`, `-no-exports`, `-ef`, \
                     `-mkfs-time`, `-all-time`, `-quiet`, `-no-progress`, `-noappend`). \
                     `-e` paths are relative to DIR, or absolute paths inside it, and leave \
                     out what they name and everything under it.",
                ),
                para(
                    "Reproducible images: with SOURCE_DATE_EPOCH set (seconds since the \
                     epoch), the image's creation time is that time and no entry's time is \
                     later (newer ones are set to it); `-mkfs-time` and `-all-time` still \
                     decide what they set. Entries are stored in name order, so the same \
                     tree gives the same bytes on any machine and with any `-p`.",
                ),
            ],
            vec![
                example(
                    "An image as mksquashfs makes one by default (gzip, 128K blocks):",
                    "sqfs pack rootfs image.sqfs",
                ),
                example(
                    "zstd with 1 MiB blocks, everything owned by root, without tmp/:",
                    "sqfs pack rootfs image.sqfs -comp zstd -b 1M -all-root -e tmp",
                ),
                example(
                    "The same image on every build:",
                    "SOURCE_DATE_EPOCH=1700000000 sqfs pack rootfs image.sqfs",
                ),
            ],
        ),
        other => panic!("sqfs {other}: no page text"),
    };
    page.description = description;
    page.sections = vec![
        ("EXIT STATUS", exit_status()),
        ("EXAMPLES", examples),
        ("SEE ALSO", see_also(&name)),
    ];
    page
}

pub fn pages(date: &str) -> Vec<Page> {
    let mut cmd = sqfs_tool::cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("sqfs {}", cmd.get_version().unwrap_or_default());
    let mut pages = vec![main_page(&cmd, date, &source)];
    pages.extend(
        cmd.get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| command_page(c, date, &source)),
    );
    pages
}
