//! The `sqfs` tool's commands, as a library so that the fuzz targets and tests can drive
//! them (extraction above all) without a process per input. The binary is `src/main.rs`.

pub mod cat;
pub mod cli;
mod dest;
pub mod error;
pub mod extract;
pub mod info;
pub mod ls;
pub mod pack;
pub mod resolve;
pub mod sif;
mod sys;
mod walk;

pub use error::Error;
pub use extract::{extract, Options as ExtractOptions, Summary as ExtractSummary};
