//! FUSE filesystem over `sqfs` (issue 3; a skeleton until then).
