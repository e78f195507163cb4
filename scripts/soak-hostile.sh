#!/usr/bin/env bash
# The long hostile-image soak: thousands of damaged variants per source image through
# squashfuse-rs mounts and ch-run (the same test CI runs with a few hundred).
#
# Usage (root, FUSE, the user chtest as scripts/setup.sh makes it): bash scripts/soak-hostile.sh [N]
#   N = variants per source image (default 1000; five sources through the mount, N through ch-run)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export HOSTILE_VARIANTS=${1:-1000}
cd "$repo"
cargo test --release -p e2e-tests --test hostile_mounts -- --nocapture 2>&1 \
  | grep -E "variants|test result|panicked|FAILED"
