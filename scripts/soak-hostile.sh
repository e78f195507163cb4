#!/usr/bin/env bash
# The long hostile-image soak: thousands of damaged variants per source image through
# squashfuse-rs mounts and ch-run (the same test CI runs with a few hundred), after the
# library-level hostile tests: damaged tiny images walked through the API (bounded reads,
# listings checked for repeated and out-of-order names) and the hand-patched images the
# reader must refuse. The mount soak includes the targeted corruptions every run makes: a
# directory listing its ancestor, fragment and block-word damage, a repeated, unsorted or
# slashed name, a fragment index past the table on a file with no tail, a root whose
# owners or listing cannot be read, an id table index that ends short of the image.
#
# Usage (root, FUSE, the user chtest as scripts/setup.sh makes it): bash scripts/soak-hostile.sh [N]
#   N = variants per source image (default 1000; five sources through the mount, N through ch-run)
#   SOAK_FUZZ_SECONDS=S also runs the `image` and `mutate` fuzz targets S seconds each
#   (fuzz/ci.sh; needs cargo-fuzz).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export HOSTILE_VARIANTS=${1:-1000}
cd "$repo"
cargo test --release -p sqfs --test hostile_images --test strict_images -- --nocapture 2>&1 \
  | grep -E "variants|test result|panicked|FAILED"
cargo test --release -p e2e-tests --test hostile_mounts -- --nocapture 2>&1 \
  | grep -E "variants|test result|panicked|FAILED"
if [[ -n ${SOAK_FUZZ_SECONDS:-} ]]; then
    FUZZ_SECONDS=$SOAK_FUZZ_SECONDS bash fuzz/ci.sh image mutate
fi
