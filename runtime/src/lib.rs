//! `ch-run`: a Charliecloud-compatible, fully unprivileged container runtime that mounts
//! SquashFS images in-process (see DESIGN.md, "ch-run's life").
//!
//! One run is two processes: the `ch-run` the user started ([`waiter`]), which forwards
//! signals and exits with the command's status, and the supervisor it forks
//! ([`supervisor`]), which enters new namespaces, serves the image over FUSE, builds the
//! root ([`rootfs`]) and is the command's parent until every process of the container is gone.
//! By default the image's FUSE mount is not the supervisor's own: it is a copy of the mount of
//! an image server that the user's containers of that image share ([`share`]).

pub mod binds;
pub mod bounded;
pub mod cli;
pub mod environ;
pub mod exec;
pub mod failure;
pub mod fuse_mount;
pub mod handoff;
pub mod image;
pub mod join;
pub mod mount_api;
pub mod passwd;
pub mod plan;
pub mod protocol;
pub mod rootfs;
pub mod share;
pub mod storage;
pub mod supervisor;
pub mod trust;
pub mod userns;
pub mod waiter;

/// The version `ch-run -V` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
