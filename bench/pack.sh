#!/usr/bin/env bash
# Side-by-side packing benchmark: `sqfs pack` vs mksquashfs 4.5.1 on the same trees, with
# the same codec at its default level and the same number of compressor threads
# (`-p N` / `-processors N`), images written to tmpfs. Medians of RUNS runs, the two tools
# taking turns in every round (and swapping who goes first), so a change of load on the
# shared machine falls on both alike. Writes bench/results/pack.md.
#
# Usage: bash bench/pack.sh [RUNS]        (root for debootstrap; ~40 min on 2 cores)
#   CODECS="gzip zstd" to run some codecs only; THREADS=N (default: every core);
#   TREES="rootfs big" to run some trees only; NICE=-10 runs every timed command at that
#   priority (both tools alike); REPORT=name.md to write another results file.
#
# Trees: a Debian bookworm minbase + python3 root filesystem (debootstrap, as chrun.sh
# makes it; ~260 MiB in ~8,400 entries), and 512 MiB of big files (4 x 128 MiB cut from
# the machine's /usr binaries, libraries and text, so they compress as real data does).
# The whole run holds /tmp/sqfs-bench.lock (flock), as the other benchmarks do.
set -euo pipefail
if [ -z "${PACK_BENCH_LOCKED:-}" ]; then
  exec env PACK_BENCH_LOCKED=1 flock /tmp/sqfs-bench.lock bash "$0" "$@"
fi
runs=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}
out=/dev/shm/sqfs-pack-bench # images into RAM: measure packing, not the disk
threads=${THREADS:-$(nproc)}
nice=${NICE:-0}
mkdir -p "$work" "$out" "$here/results"
# From inside the repository, so that cargo reads its .cargo/config.toml (liblzma's build flags).
(cd "$repo" && cargo build --release -p sqfs-tool >/dev/null)
sqfs=$repo/target/release/sqfs
mksquashfs -version | head -n1 | grep -q '4\.5\.1' ||
  echo "pack.sh: warning: mksquashfs is not 4.5.1: $(mksquashfs -version | head -n1)" >&2

# --- trees -----------------------------------------------------------------------------
rootfs=$work/rootfs-py
if [ ! -f "$work/rootfs-py.stamp" ]; then
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3 bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  touch "$work/rootfs-py.stamp"
fi
big=$work/pack-big
if [ ! -f "$work/pack-big.stamp" ]; then
  rm -rf "$big"; mkdir -p "$big"
  # head closes the pipe once it has enough: that SIGPIPE is expected.
  { find /usr/lib/x86_64-linux-gnu /usr/bin /usr/share -type f -size +64k -print0 | sort -z |
      xargs -0 cat 2>/dev/null || true; } | head -c $((512 << 20)) >"$big/all" || true
  split -b $((128 << 20)) -d "$big/all" "$big/part-"
  rm "$big/all"
  touch "$work/pack-big.stamp"
fi
declare -A tree_dir=([rootfs]=$rootfs [big]=$big)
declare -A tree_note=(
  [rootfs]="Debian bookworm minbase + python3 (debootstrap), $(du -sh --apparent-size "$rootfs" | cut -f1), $(find "$rootfs" | wc -l) entries"
  [big]="4 files of 128 MiB cut from this machine's /usr"
)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# One run of "$@" (its output discarded; a failure ends the script): "wall cpu" seconds,
# cpu being user + system time of the process and its threads.
timeit() {
  local t
  t=$(mktemp)
  nice -n "$nice" /usr/bin/time -f '%e %U %S' -o "$t" "$@" >/dev/null
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$t"
  rm -f "$t"
}
ours() { timeit "$sqfs" pack "$1" "$2" -comp "$3" -p "$threads" -quiet; }
theirs() { timeit mksquashfs "$1" "$2" -comp "$3" -processors "$threads" -noappend -no-progress -quiet; }

report=$here/results/${REPORT:-pack.md}
# shellcheck source=bench/vm-memory.sh
. "$here/vm-memory.sh"
hold_vm_memory
load_start=$(uptime | sed 's/.*load average: //')
{
  echo "# sqfs pack vs mksquashfs"
  echo
  echo "Made by \`${NICE:+NICE=$NICE }${CODECS:+CODECS=\"$CODECS\" }${TREES:+TREES=\"$TREES\" }${THREADS:+THREADS=$THREADS }bash bench/pack.sh $runs\` at commit $(git -C "$repo" rev-parse --short HEAD) on $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r)."
  echo "$(mksquashfs -version | head -n1); \`sqfs pack DIR IMG -comp C -p $threads\` vs \`mksquashfs DIR IMG -comp C -processors $threads -noappend\`, each codec at its default level (gzip 9, xz 6 without BCJ filters; zstd: mksquashfs 15, sqfs pack 15 with a shorter search and 9 for the blocks level 1 shrinks below a quarter, see \`sqfs pack --help\`), 128 KiB blocks, images written to tmpfs, source trees in the page cache."
  echo "Medians of $runs rounds (the tools take turns in each); speed ratio = mksquashfs time / sqfs pack time (> 1: sqfs pack faster), by wall time and by CPU time (user + system, all threads: the figure that other jobs on a shared machine disturb least); size ratio = sqfs pack's image / mksquashfs's (< 1: smaller)."
  echo
  for t in ${TREES:-rootfs big}; do echo "- $t: ${tree_note[$t]}"; done
  echo
  echo "| tree | codec | mksquashfs wall s | sqfs pack wall s | speed ratio (wall) | mksquashfs CPU s | sqfs pack CPU s | speed ratio (CPU) | mksquashfs bytes | sqfs pack bytes | size ratio |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$report"
for t in ${TREES:-rootfs big}; do
  src=${tree_dir[$t]}
  # Warm the page cache with the whole tree (GNU tar reads no data for -f /dev/null).
  tar -C "$src" -cf - . | cat >/dev/null
  for codec in ${CODECS:-gzip zstd xz}; do
    o=() m=()
    for ((i = 0; i < runs; i++)); do
      rm -f "$out"/*.sqfs
      if ((i % 2 == 0)); then
        o+=("$(ours "$src" "$out/ours.sqfs" "$codec")")
        m+=("$(theirs "$src" "$out/theirs.sqfs" "$codec")")
      else
        m+=("$(theirs "$src" "$out/theirs.sqfs" "$codec")")
        o+=("$(ours "$src" "$out/ours.sqfs" "$codec")")
      fi
    done
    wo=$(printf '%s\n' "${o[@]}" | cut -d' ' -f1 | median)
    wm=$(printf '%s\n' "${m[@]}" | cut -d' ' -f1 | median)
    co=$(printf '%s\n' "${o[@]}" | cut -d' ' -f2 | median)
    cm=$(printf '%s\n' "${m[@]}" | cut -d' ' -f2 | median)
    so=$(stat -c %s "$out/ours.sqfs")
    sm=$(stat -c %s "$out/theirs.sqfs")
    row=$(printf '| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %d | %.4f |' "$t" "$codec" \
      "$wm" "$wo" "$(echo "$wm / $wo" | bc -l)" "$cm" "$co" "$(echo "$cm / $co" | bc -l)" \
      "$sm" "$so" "$(echo "$so / $sm" | bc -l)")
    echo "$row" | tee -a "$report"
    echo "  ($t $codec, wall and CPU s per run: sqfs pack ${o[*]}; mksquashfs ${m[*]})" >&2
  done
done
rm -rf "$out"
echo >>"$report"
echo "Every run's times are printed on stderr as the script goes. Load (uptime) at the start: $load_start; at the end: $(uptime | sed 's/.*load average: //'). The virtual machine's memory: $vm_memory_note (bench/vm-memory.sh)." >>"$report"
echo "pack.sh: wrote $report" >&2
