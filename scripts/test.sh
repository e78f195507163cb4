#!/usr/bin/env bash
# The whole test suite in one command, on a fresh Debian 12 machine or one set up before:
#   1. scripts/setup.sh tests (as root, or through sudo): packages, /dev/fuse, the test users,
#      the corpus, Slurm (this machine and two simulated nodes); a Slurm this script started
#      is stopped at the end;
#   2. cargo build --workspace --release (the binaries the tests run), then
#      cargo test --workspace --release [ARGS...];
#   3. the tests that did not run, counted and listed (tests/skip.rs records them).
# As root (and with CH_TEST_REQUIRE_ALL or CI set) every test must run: a test that cannot
# is a failure. As a plain user the tests that need root are skips, listed at the end.
#
# Usage: bash scripts/test.sh [CARGO TEST ARGS...]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "test.sh: cargo not found: install Rust (rustup.rs)" >&2; exit 1; }

slurm_up() {
    sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' &&
        [ "$(sinfo -h -N -p two -o '%T' 2>/dev/null | grep -cE '^(idle|mixed|allocated)')" -eq 2 ]
}
slurm_was_up=0
slurm_up && slurm_was_up=1

bash scripts/setup.sh tests

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
if [ "$(id -u)" -eq 0 ]; then
    # Root has all that every test needs (setup.sh made the rest): no test may skip.
    export CH_TEST_REQUIRE_ALL=1
fi
skips=$(mktemp)
trap 'rm -f "$skips"; [ $slurm_was_up = 1 ] || $sudo bash scripts/slurm-down.sh >/dev/null' EXIT
export CH_TEST_SKIP_LOG=$skips

start=$(date +%s)
status=0
# The tests run the workspace's binaries (sqfs, squashfuse-rs, ch-run): `cargo test` builds
# a binary only for its own package's integration tests, and sqfs-tool has none.
cargo build --workspace --release
cargo test --workspace --release "$@" || status=$?
took=$(( $(date +%s) - start ))

count=$(wc -l <"$skips")
if [ "$count" -gt 0 ]; then
    echo
    echo "test.sh: $count test(s) SKIPPED, they did not run:"
    sed 's/^SKIPPED /    /' "$skips"
    echo "test.sh: as root, scripts/test.sh runs every test"
fi
if [ $status -ne 0 ]; then
    echo "test.sh: FAILED (cargo test exit $status) after ${took}s" >&2
    exit $status
fi
echo "test.sh: passed in ${took}s, $count skipped"
