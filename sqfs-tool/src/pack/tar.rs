//! `sqfs pack --tar FILE|- IMAGE`: a tar archive into an image without unpacking it, as
//! tar2sqfs does: each member is added to the writer as it is read from the stream (a
//! file's content goes from the stream straight into the writer's blocks), so a Docker or
//! OCI layer, `docker export` or any tarball converts in one pass, from a pipe too.
//!
//! The archive is untrusted input: names are made relative and `..` refused
//! (`names.rs`), what the tar crate reads between members is bounded (`input.rs`), sparse
//! maps are checked (`sparse.rs`), and every failure is one line naming the member. A
//! member of a path seen before replaces it, as extracting the archive would
//! (`tree.rs`).

mod input;
mod member;
mod names;
mod pax;
mod sparse;
mod tree;

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sqfs::{Content, Meta, WriteError, Writer};

use super::error::{Error, Result};
use super::output::Output;
use super::source::{Kind as StatKind, Stat};
use super::{Options, Summary};
use crate::error::show;
use member::{Kind, Member};
use tree::{Add, Tree, TreeError};

/// What the walk over the members keeps.
struct Packer<'a> {
    writer: Writer,
    tree: Tree,
    options: &'a Options,
    excludes: HashSet<Vec<u8>>,
    /// The archive as the user named it, for messages.
    display: String,
    progress: ProgressBar,
    warnings: u64,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Packs the tar archive `source` (`-`: standard input) into `image`.
pub fn pack_tar(source: &Path, image: &Path, options: &Options) -> Result<Summary> {
    let started = Instant::now();
    let display = if source.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        source.display().to_string()
    };
    let input = input::open(source).map_err(|e| Error::Source {
        path: display.clone(),
        source: e,
    })?;
    // -e paths name members: relative ones from the archive's root, absolute ones too
    // (members are stored without their leading /).
    let excludes = options.excludes(Path::new("/"))?;
    let output = Output::create(image)?;
    let file = output.file.try_clone().map_err(|e| Error::Image {
        path: image.display().to_string(),
        source: e,
    })?;
    let image_error = |e| Error::Write {
        path: image.display().to_string(),
        source: e,
    };
    // The root and the directories only implied by a member's path: 0755, root's, the
    // image's time (tar2sqfs's defaults), owners and times then forced as asked.
    let implied = options.meta(
        &Stat {
            kind: StatKind::Dir,
            permissions: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: i64::from(options.write.mkfs_time),
            dev: 0,
            ino: 0,
            nlink: 1,
            rdev: 0,
        },
        Vec::new(),
    );
    let writer = Writer::create(file, &options.write, implied.clone()).map_err(|e| match e {
        WriteError::Options(why) => Error::Options(why),
        e => image_error(e),
    })?;
    let mut packer = Packer {
        tree: Tree::new(writer.root(), implied),
        writer,
        options,
        excludes,
        display,
        progress: bar(options.progress, input.len),
        warnings: 0,
    };
    packer.run(input)?;
    let Packer {
        writer,
        warnings,
        progress,
        ..
    } = packer;
    let written = writer.finish().map_err(image_error)?;
    progress.finish_and_clear();
    output.commit()?;
    Ok(Summary {
        image: image.to_path_buf(),
        written,
        warnings,
        elapsed: started.elapsed(),
        codec: options.write.compression.name(),
        block_size: options.write.block_size,
    })
}

/// A bar of the archive's bytes read, on a terminal only (a count where the length is not
/// known: a pipe, standard input).
fn bar(show: bool, len: Option<u64>) -> ProgressBar {
    use std::io::IsTerminal;
    if !show || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "[{elapsed_precise}] {spinner} {bytes} {binary_bytes_per_sec}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl Packer<'_> {
    fn run(&mut self, input: input::Input) -> Result<()> {
        let input::Input {
            reader,
            budget,
            consumed,
            ..
        } = input;
        let mut archive = ::tar::Archive::new(reader);
        let mut entries = archive.entries().map_err(|e| self.stream_error(None, e))?;
        let mut last: Option<Vec<u8>> = None;
        loop {
            budget.limit(input::HEADER_BUDGET);
            let next = entries.next();
            budget.lift();
            let mut entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(self.stream_error(last.as_deref(), e)),
            };
            let name = entry.path_bytes().into_owned();
            let pax = {
                let (start, recorded) = budget.recorded();
                pax::find(&recorded, start, entry.raw_header_position())
                    .map(|data| data.map(<[u8]>::to_vec))
                    .map_err(|why| self.member_error(&name, invalid(why.into())))?
            };
            let member = Member::read(&mut entry, pax.as_deref())
                .map_err(|e| self.member_error(&name, e))?;
            self.member(&mut entry, member)?;
            // What the member holds past what was packed (a directory's data, a skipped
            // member's), read to reach the next header.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| {
                self.member_error(&name, invalid(format!("the archive ends inside it ({e})")))
            })?;
            self.progress.set_position(consumed.get());
            last = Some(name);
        }
        // Whatever follows the end-of-archive blocks (a writer's record padding), read so
        // that a program piping the archive in does not fail writing it; bounded.
        let _ = io::copy(
            &mut io::Read::take(archive.into_inner(), 1 << 20),
            &mut io::sink(),
        );
        Ok(())
    }

    fn path(&self, name: &[u8]) -> String {
        format!("{}: {}", self.display, show(name))
    }

    fn member_error(&self, name: &[u8], e: io::Error) -> Error {
        Error::Source {
            path: self.path(name),
            source: io::Error::new(e.kind(), show(e.to_string().as_bytes()).into_owned()),
        }
    }

    /// A failure to read the stream between members (after `last`).
    fn stream_error(&self, last: Option<&[u8]>, e: io::Error) -> Error {
        let after = match last {
            Some(name) => format!("after {}", show(name)),
            None => "at its start".to_string(),
        };
        Error::Source {
            path: self.display.clone(),
            source: io::Error::new(
                e.kind(),
                format!(
                    "not a valid tar archive {after}: {}",
                    show(e.to_string().as_bytes())
                ),
            ),
        }
    }

    fn tree_error(&self, name: &[u8], e: TreeError) -> Error {
        match e {
            TreeError::Write(WriteError::SizeChanged { expected, found }) if found < expected => {
                self.member_error(
                    name,
                    invalid(format!(
                        "the archive ends inside it ({found} of {expected} bytes)"
                    )),
                )
            }
            TreeError::Write(WriteError::Input(e)) => self.member_error(name, e),
            TreeError::Write(source) => Error::Write {
                path: self.path(name),
                source,
            },
            e => self.member_error(name, invalid(e.to_string())),
        }
    }

    fn warn(&mut self, message: String) {
        self.warnings += 1;
        self.progress
            .suspend(|| eprintln!("sqfs: warning: {message}"));
    }

    fn excluded(&self, parts: &[&[u8]]) -> bool {
        !self.excludes.is_empty()
            && (1..=parts.len()).any(|n| self.excludes.contains(&names::join(&parts[..n])))
    }

    /// The meta `member` is stored with: owners and times as the options say, the
    /// xattrs SquashFS can store (a warning for each other one).
    fn meta(&mut self, member: &Member) -> Meta {
        let mut xattrs = Vec::new();
        if self.options.xattrs {
            for (name, value) in &member.xattrs {
                let prefixed = [&b"user."[..], b"trusted.", b"security."]
                    .iter()
                    .any(|p| name.starts_with(p) && name.len() > p.len());
                // Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX: what no file can carry.
                let fits = name.len() <= 255 && value.len() <= 65536;
                if prefixed && fits {
                    xattrs.push((name.clone(), value.clone()));
                } else {
                    let why = if prefixed {
                        "names of at most 255 bytes and values of at most 64 KiB are stored"
                    } else {
                        "SquashFS stores user., trusted. and security. ones"
                    };
                    self.warn(format!(
                        "{}: extended attribute {} not stored ({why})",
                        self.path(&member.name),
                        show(name)
                    ));
                }
            }
        }
        let stat = Stat {
            kind: StatKind::File,
            permissions: member.permissions,
            uid: member.uid,
            gid: member.gid,
            size: 0,
            mtime: member.mtime,
            dev: 0,
            ino: 0,
            nlink: 1,
            rdev: 0,
        };
        self.options.meta(&stat, xattrs)
    }

    /// Adds one member; its content is read from `entry`.
    fn member<R: io::Read>(&mut self, entry: &mut ::tar::Entry<R>, member: Member) -> Result<()> {
        if let Kind::Skip = member.kind {
            return Ok(());
        }
        let name = member.name.clone();
        let parts = names::check(&name).map_err(|why| self.member_error(&name, invalid(why)))?;
        if self.excluded(&parts) {
            return Ok(());
        }
        let meta = self.meta(&member);
        let stored = entry.size();
        let added = match member.kind {
            Kind::Skip => Ok(()),
            Kind::Dir => self.tree.add(&mut self.writer, &parts, Add::Dir(meta)),
            Kind::File { size, sparse } => {
                let add = |content: &mut dyn io::Read, w: &mut Writer, tree: &mut Tree| {
                    tree.add(
                        w,
                        &parts,
                        Add::Leaf(&mut |w, parent, name| {
                            w.file(parent, name, meta.clone(), size, Content::Stream(content))
                        }),
                    )
                };
                match sparse {
                    None => add(entry, &mut self.writer, &mut self.tree),
                    Some(s) => {
                        let (map, data) = match s.map {
                            Some(map) => (map, stored),
                            None => sparse::read_map(entry, stored)
                                .map(|(map, taken)| (map, stored - taken))
                                .map_err(|why| self.member_error(&name, invalid(why)))?,
                        };
                        sparse::check(&map, size, data)
                            .map_err(|why| self.member_error(&name, invalid(why)))?;
                        let mut expanded = sparse::Expanded::new(entry, map, size);
                        add(&mut expanded, &mut self.writer, &mut self.tree)
                    }
                }
            }
            Kind::Symlink(target) => self.tree.add(
                &mut self.writer,
                &parts,
                Add::Leaf(&mut |w, parent, name| w.symlink(parent, name, meta.clone(), &target)),
            ),
            Kind::Special(special) => self.tree.add(
                &mut self.writer,
                &parts,
                Add::Leaf(&mut |w, parent, name| w.special(parent, name, meta.clone(), special)),
            ),
            Kind::HardLink(target) => {
                let target_parts = names::check(&target).map_err(|why| {
                    self.member_error(&name, invalid(format!("hard link target: {why}")))
                })?;
                if self.excluded(&target_parts) {
                    self.warn(format!(
                        "{}: hard link to {}, which is excluded: left out",
                        self.path(&name),
                        show(&target)
                    ));
                    return Ok(());
                }
                self.tree
                    .add(&mut self.writer, &parts, Add::HardLink(&target_parts))
            }
        };
        added.map_err(|e| self.tree_error(&name, e))
    }
}
