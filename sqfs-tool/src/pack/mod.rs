//! `sqfs pack DIR IMAGE`: a directory tree into a SquashFS image, with mksquashfs's
//! options, by [`sqfs::Writer`]. The tree is walked by descriptors (`walk.rs`,
//! `source.rs`), the image written beside its target and renamed into place when complete
//! (`output.rs`).

mod error;
pub mod options;
mod output;
mod progress;
mod source;
mod tar;
mod walk;

use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use error::{Error, Result};
pub use options::Options;
pub use tar::pack_tar;

use output::Output;
use walk::Walk;

/// What was packed.
#[derive(Debug, Clone)]
pub struct Summary {
    pub image: PathBuf,
    pub written: sqfs::WriteSummary,
    /// Entries left out or emptied, each with a warning.
    pub warnings: u64,
    pub elapsed: Duration,
    pub codec: &'static str,
    pub block_size: u32,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.written;
        let percent = if w.bytes_read > 0 {
            format!(
                " ({:.1}% of {} bytes read)",
                w.bytes_used as f64 * 100.0 / w.bytes_read as f64,
                w.bytes_read
            )
        } else {
            String::new()
        };
        write!(
            f,
            "{}: {} bytes{percent}, {} inodes, {} duplicate files, {} fragments, {} ids, {} \
             xattr sets; {} {} KiB blocks, {:.2} s",
            self.image.display(),
            w.bytes_used,
            w.inodes,
            w.duplicates,
            w.fragments,
            w.ids,
            w.xattr_sets,
            self.codec,
            self.block_size >> 10,
            self.elapsed.as_secs_f64()
        )?;
        if self.warnings > 0 {
            write!(f, "; {} warnings", self.warnings)?;
        }
        Ok(())
    }
}

/// Packs the tree under `source` into `image`.
pub fn pack(source: &Path, image: &Path, options: &Options) -> Result<Summary> {
    let started = Instant::now();
    let display_root = source.display().to_string();
    let root = source::open_root(source).map_err(|e| Error::Source {
        path: display_root.clone(),
        source: e,
    })?;
    let root_stat = source::fstat(&root).map_err(|e| Error::Source {
        path: display_root.clone(),
        source: e,
    })?;
    let excludes = options.excludes(source)?;
    crate::sys::raise_fd_limit();
    let output = Output::create(image)?;
    let own_files = output.own_files();
    let file = output.file.try_clone().map_err(|e| Error::Image {
        path: image.display().to_string(),
        source: e,
    })?;
    let progress = progress::bar(options.progress, &root, &excludes);
    let root_xattrs = if options.xattrs {
        source::xattrs_of(root.as_fd()).map_err(|e| Error::Source {
            path: display_root.clone(),
            source: e,
        })?
    } else {
        Vec::new()
    };
    let root_meta = options.meta(&root_stat, root_xattrs);
    let image_error = |e| Error::Write {
        path: image.display().to_string(),
        source: e,
    };
    let mut writer =
        sqfs::Writer::create(file, &options.write, root_meta).map_err(|e| match e {
            sqfs::WriteError::Options(why) => Error::Options(why),
            e => image_error(e),
        })?;
    let mut walk = Walk {
        writer: &mut writer,
        options,
        excludes: &excludes,
        own_files: &own_files,
        display_root,
        progress: &progress,
        links: Default::default(),
        warnings: 0,
    };
    walk.run(root)?;
    let warnings = walk.warnings;
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
