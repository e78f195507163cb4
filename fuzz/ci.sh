#!/usr/bin/env bash
# Bounded fuzzing for CI: every cargo-fuzz target for FUZZ_SECONDS (default 60) each,
# starting from seeds derived from testdata/tiny. Exits non-zero if any target finds a
# crash, a timeout (-timeout) or an out-of-memory (-rss_limit_mb / -malloc_limit_mb); the
# input is then in fuzz/artifacts/<target>/ and belongs in
# sqfs/tests/fuzz_regressions/<target>/ once fixed (see fuzz/README.md).
#
# Usage: fuzz/ci.sh [TARGET...]     (default: all targets)
# Environment: FUZZ_SECONDS (per target), FUZZ_SANITIZER (none | address; default none),
# FUZZ_JOBS (targets fuzzed at once; default one per core).
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

# One fuzzer per core at a time (each libFuzzer run is one process): on CI's 2 cores the
# targets take half the wall time they would one after another. Each run's output is kept
# in fuzz/logs/TARGET.log and shown when it ends.
fuzz_one() { # target
    local t=$1 extra=()
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # mutate's inputs are short patch lists; let them grow past the 1-byte seeds.
    [[ $t == mutate ]] && extra=(-max_len=512)
    # pack's inputs are programs: longer ones build bigger trees.
    [[ $t == pack ]] && extra=(-max_len=4096)
    cargo fuzz run -s "$SANITIZER" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -print_final_stats=1 "${extra[@]}"
}

JOBS=${FUZZ_JOBS:-$(nproc)}
mkdir -p fuzz/logs
declare -A running=() # pid -> target
failed=()
reap() { # waits for one run to end and records it
    local pid rc=0
    wait -n -p pid || rc=$?
    local t=${running[$pid]}
    unset "running[$pid]"
    echo "==== fuzz $t: ended (exit $rc)"
    cat "fuzz/logs/$t.log"
    [[ $rc -eq 0 ]] || failed+=("$t")
}
for t in "${TARGETS[@]}"; do
    while [[ ${#running[@]} -ge $JOBS ]]; do reap; done
    echo "==== fuzz $t for ${SECS}s"
    fuzz_one "$t" >"fuzz/logs/$t.log" 2>&1 &
    running[$!]=$t
done
while [[ ${#running[@]} -gt 0 ]]; do reap; done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz/ci.sh: findings in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/ci.sh: no findings in ${TARGETS[*]} (${SECS}s each)"
