//! ch-run runtime (issue 4; a skeleton until then).
