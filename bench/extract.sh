#!/usr/bin/env bash
# Side-by-side extraction benchmark: `sqfs extract` vs `unsquashfs`, single-threaded and
# with every core, on a >= 1 GiB image per codec; and `sqfs cat` of one large file.
# Medians of RUNS runs, written as a Markdown table to bench/results/extract.md.
#
# Usage: bash bench/extract.sh [RUNS]      (root; needs squashfs-tools; ~20 min on 2 cores)
#   CODECS="zstd lz4" to run some codecs only; REPORT=name.md to write another results file;
#   NICE=-10 runs every timed command at that priority (both tools alike), so that other jobs
#   on a shared machine skew the figures less.
set -euo pipefail
runs=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}
out_dir=/dev/shm/sqfs-bench-out   # extract into RAM: measure decoding, not the disk
mkdir -p "$work" "$here/results"
cargo build --release -p sqfs-tool --manifest-path "$repo/Cargo.toml" >/dev/null
sqfs=$repo/target/release/sqfs

# Source tree: ~1.6 GiB of real files (libraries, binaries, text), the same for every codec.
src=$work/src
if [ ! -f "$work/src.stamp" ]; then
  rm -rf "$src"; mkdir -p "$src"
  cp -a /usr/lib/x86_64-linux-gnu "$src/lib"; cp -a /usr/share "$src/share"; cp -a /usr/bin "$src/bin"
  touch "$work/src.stamp"
fi
big=$(find "$src" -type f -size +20M -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2-)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
nice=${NICE:-0}
timeit() { # prints seconds of one run of "$@"
  local t0 t1; t0=$(date +%s.%N); nice -n "$nice" "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
once() { # seconds of one run of "$@", into a fresh destination
  rm -rf "$out_dir"; sync
  timeit "$@"
  rm -rf "$out_dir"
}

report=$here/results/${REPORT:-extract.md}
{
  echo "# sqfs extract vs unsquashfs"
  echo
  echo "Made by \`${NICE:+NICE=$NICE }${CODECS:+CODECS=\"$CODECS\" }${REPORT:+REPORT=$REPORT }bash bench/extract.sh $runs\` at commit $(git -C "$repo" rev-parse --short HEAD) on $(date -u +%F), $(nproc) cores, $(uname -r)."
  echo "Source: /usr/lib/x86_64-linux-gnu + /usr/share + /usr/bin of this machine ($(du -sh "$src" | cut -f1))."
  echo "Extraction into tmpfs, image in the page cache (decoding, not the disk, is measured)."
  echo "Medians of $runs rounds (the tools take turns in each), seconds; ratio = unsquashfs time / sqfs time (> 1: sqfs faster)."
  echo
  echo "| codec | image | unsquashfs -processors 1 | sqfs extract -p 1 | ratio | unsquashfs (all cores) | sqfs extract (all cores) | ratio | sqfs cat of $(basename "$big") |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$report"
for codec in ${CODECS:-gzip xz zstd lz4 lzo}; do
  img=$work/$codec.sqfs
  [ -f "$img" ] || mksquashfs "$src" "$img" -comp "$codec" -no-progress -quiet >/dev/null
  cat "$img" >/dev/null # warm the page cache
  # The four extractions take turns in every round, so that a change of load on the machine
  # falls on all of them alike.
  u1s=() s1s=() uns=() sns=() cats=()
  for ((i = 0; i < runs; i++)); do
    u1s+=("$(once unsquashfs -processors 1 -no-progress -d "$out_dir" "$img")")
    s1s+=("$(once "$sqfs" extract -p 1 "$img" "$out_dir")")
    uns+=("$(once unsquashfs -no-progress -d "$out_dir" "$img")")
    sns+=("$(once "$sqfs" extract "$img" "$out_dir")")
    cats+=("$(once sh -c "\"$sqfs\" cat \"$img\" \"$big\" >/dev/null")")
  done
  u1=$(printf '%s\n' "${u1s[@]}" | median)
  s1=$(printf '%s\n' "${s1s[@]}" | median)
  un=$(printf '%s\n' "${uns[@]}" | median)
  sn=$(printf '%s\n' "${sns[@]}" | median)
  catt=$(printf '%s\n' "${cats[@]}" | median)
  size=$(stat -c %s "$src/$big")
  printf '| %s | %s MiB | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f MB/s |\n' \
    "$codec" "$(( $(stat -c %s "$img") >> 20 ))" "$u1" "$s1" "$(echo "$u1 / $s1" | bc -l)" \
    "$un" "$sn" "$(echo "$un / $sn" | bc -l)" "$(echo "$size / $catt / 1000000" | bc -l)" >>"$report"
done
cat "$report"
