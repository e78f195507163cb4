#!/usr/bin/env bash
# Bounded fuzzing for CI: every cargo-fuzz target for FUZZ_SECONDS (default 60) each,
# starting from seeds derived from testdata/tiny. Exits non-zero if any target finds a
# crash, a timeout (-timeout) or an out-of-memory (-rss_limit_mb / -malloc_limit_mb); the
# input is then in fuzz/artifacts/<target>/ and belongs in
# sqfs/tests/fuzz_regressions/<target>/ once fixed (see fuzz/README.md).
#
# Usage: fuzz/ci.sh [TARGET...]     (default: all targets)
# Environment: FUZZ_SECONDS (per target), FUZZ_SANITIZER (none | address; default none).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECS=${FUZZ_SECONDS:-60}
SANITIZER=${FUZZ_SANITIZER:-none}
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(image decompress metadata mutate extract sif pack)

# cargo-fuzz passes nightly-only flags to rustc; only a stable toolchain is installed.
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz
fi

# The seed corpora: the replay test writes them (and replays them and every committed
# regression input, which is the check that needs no fuzzer).
SQFS_FUZZ_SEEDS="$ROOT/fuzz/corpus" cargo test --release -q -p sqfs --test fuzz_regressions
# extract's body runs sqfs extract (the sqfs-tool crate): its replay test is an end-to-end one.
SQFS_FUZZ_SEEDS="$ROOT/fuzz/corpus" cargo test --release -q -p e2e-tests --test extract_hostile \
    extract_fuzz_seeds

cargo fuzz build -s "$SANITIZER"

failed=()
for t in "${TARGETS[@]}"; do
    echo "==== fuzz $t for ${SECS}s"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    extra=()
    # mutate's inputs are short patch lists; let them grow past the 1-byte seeds.
    [[ $t == mutate ]] && extra=(-max_len=512)
    # pack's inputs are programs: longer ones build bigger trees.
    [[ $t == pack ]] && extra=(-max_len=4096)
    if ! cargo fuzz run -s "$SANITIZER" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -print_final_stats=1 "${extra[@]}"; then
        failed+=("$t")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz/ci.sh: findings in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/ci.sh: no findings in ${TARGETS[*]} (${SECS}s each)"
