#!/usr/bin/env bash
# Side-by-side FUSE benchmark: squashfuse-rs vs squashfuse_ll and squashfuse (Debian's
# squashfuse 0.1.105) and the kernel's own squashfs (mount -o loop), one run, medians.
#
#   sequential read of a 1 GiB file, per codec, cold (page cache dropped, fresh mount)
#   two readers at once (1 GiB file + a 256 MiB file), cold
#   4 KiB random reads (fio, psync, 20 s), cold start
#   find / ls -lR / tar c of a Debian root filesystem image (debootstrap), cold and warm
#   the daemon's peak RSS after the tar
#
# Usage: bash bench/fuse.sh [RUNS] [CODECS...]   (root; default 3 runs, gzip xz zstd lz4 lzo)
# Writes bench/results/fuse.md. Needs squashfs-tools squashfuse fuse3 fio debootstrap.
set -euo pipefail
runs=${1:-3}; shift || true
codecs=("$@"); [ ${#codecs[@]} -gt 0 ] || codecs=(gzip xz zstd lz4 lzo)
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}; mkdir -p "$work" "$here/results"
cargo build --release -p fusefs --manifest-path "$repo/Cargo.toml" >/dev/null
ours=$repo/target/release/squashfuse-rs
mnt=$work/mnt; mkdir -p "$mnt"

# ---- data ------------------------------------------------------------------------------
if [ ! -s "$work/data/b" ]; then
  mkdir -p "$work/data"
  # Real bytes (libraries and binaries), so every codec sees realistic compressibility.
  # (head ends the pipe early on purpose: its SIGPIPE is not an error here)
  { find /usr/lib /usr/bin -type f -size +64k -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c 1G >"$work/data/a"
  { find /usr/share -type f -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c 256M >"$work/data/b"
fi
for c in "${codecs[@]}"; do
  [ -f "$work/seq-$c.sqfs" ] || mksquashfs "$work/data" "$work/seq-$c.sqfs" -comp "$c" -no-progress -quiet >/dev/null
done
if [ ! -f "$work/rootfs.sqfs" ]; then
  [ -d "$work/rootfs/usr" ] || debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >/dev/null
  mksquashfs "$work/rootfs" "$work/rootfs.sqfs" -comp gzip -no-progress -quiet -e proc sys dev >/dev/null
fi

# ---- mounting --------------------------------------------------------------------------
do_mount() { # fs image
  case $1 in
    squashfuse-rs) "$ours" "$2" "$mnt" ;;
    squashfuse-rs-s) "$ours" -s "$2" "$mnt" ;;
    squashfuse_ll) squashfuse_ll "$2" "$mnt" ;;
    squashfuse) squashfuse "$2" "$mnt" ;;
    kernel) mount -t squashfs -o loop,ro "$2" "$mnt" ;;
  esac
  for _ in $(seq 100); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
  echo "mount of $2 by $1 failed" >&2; return 1
}
do_umount() { umount "$mnt" 2>/dev/null || umount -l "$mnt"; for _ in $(seq 100); do mountpoint -q "$mnt" || break; sleep 0.05; done; sleep 0.2; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fss=(squashfuse-rs squashfuse_ll squashfuse kernel)

# One cold measurement: drop caches, fresh mount, run "$@" (with $mnt), seconds.
cold() { local fs=$1 img=$2; shift 2; drop_caches; do_mount "$fs" "$img"; local t0; t0=$(now)
  "$@" >/dev/null 2>&1; local t1; t1=$(now); do_umount; echo "$t1 - $t0" | bc -l; }
seq_read() { cat "$mnt/a" >/dev/null; }
two_readers() { head -c 256M "$mnt/a" >/dev/null & cat "$mnt/b" >/dev/null; wait; }

out=$here/results/fuse.md
{
  echo "# squashfuse-rs vs squashfuse_ll, squashfuse and the kernel"
  echo
  echo "Made by \`bash bench/fuse.sh $runs ${codecs[*]}\` at commit $(git -C "$repo" rev-parse --short HEAD) on $(date -u +%F), $(nproc) cores, $(uname -r)."
  echo "Medians of $runs runs. Cold = page cache dropped and a fresh mount before each run."
  echo "squashfuse 0.1.105 (Debian 12); squashfuse-rs default options (threads = cores)."
  echo
  echo "## Sequential read of a 1 GiB file (MB/s; ratio = squashfuse-rs / other)"
  echo
  echo "| codec | squashfuse-rs | squashfuse_ll | squashfuse | kernel | vs _ll | vs kernel | two readers: rs / _ll / kernel (s) |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$out"
for c in "${codecs[@]}"; do
  img=$work/seq-$c.sqfs; declare -A mbs=(); declare -A two=()
  for fs in "${fss[@]}"; do
    t=$(for _ in $(seq "$runs"); do cold "$fs" "$img" seq_read; done | median)
    mbs[$fs]=$(echo "1073741824 / $t / 1000000" | bc -l)
    two[$fs]=$(for _ in $(seq "$runs"); do cold "$fs" "$img" two_readers; done | median)
  done
  printf '| %s | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f / %.2f / %.2f |\n' "$c" \
    "${mbs[squashfuse-rs]}" "${mbs[squashfuse_ll]}" "${mbs[squashfuse]}" "${mbs[kernel]}" \
    "$(echo "${mbs[squashfuse-rs]} / ${mbs[squashfuse_ll]}" | bc -l)" "$(echo "${mbs[squashfuse-rs]} / ${mbs[kernel]}" | bc -l)" \
    "${two[squashfuse-rs]}" "${two[squashfuse_ll]}" "${two[kernel]}" >>"$out"
done

{ echo; echo "## 4 KiB random reads of the 1 GiB file (fio psync, 20 s from cold, IOPS), ${codecs[0]}"; echo
  echo "| squashfuse-rs | squashfuse_ll | squashfuse | kernel | rs / kernel | rs / _ll |"; echo "|---|---|---|---|---|---|"; } >>"$out"
declare -A iops=()
for fs in "${fss[@]}"; do
  iops[$fs]=$(for _ in $(seq "$runs"); do
    drop_caches; do_mount "$fs" "$work/seq-${codecs[0]}.sqfs"
    fio --name=rand --filename="$mnt/a" --readonly --rw=randread --bs=4k --ioengine=psync \
      --runtime=20 --time_based --output-format=terse --terse-version=3 2>/dev/null | cut -d';' -f8
    do_umount; done | median)
done
printf '| %s | %s | %s | %s | %.2f | %.1f |\n' "${iops[squashfuse-rs]}" "${iops[squashfuse_ll]}" "${iops[squashfuse]}" \
  "${iops[kernel]}" "$(echo "${iops[squashfuse-rs]} / ${iops[kernel]}" | bc -l)" "$(echo "${iops[squashfuse-rs]} / ${iops[squashfuse_ll]}" | bc -l)" >>"$out"

{ echo; echo "## Metadata walks of a Debian root filesystem image (seconds; rs-s = squashfuse-rs -s)"; echo
  echo "| walk | squashfuse-rs | squashfuse-rs -s | squashfuse_ll | squashfuse | kernel | rs / kernel |"; echo "|---|---|---|---|---|---|---|"; } >>"$out"
walk_find() { find "$mnt" >/dev/null; }
walk_ls() { ls -lR "$mnt" >/dev/null; }
walk_tar() { tar cf - -C "$mnt" . | cat >/dev/null; }
warm() { local fs=$1 img=$2; shift 2; do_mount "$fs" "$img"; "$@" >/dev/null 2>&1; local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); do_umount; echo "$t1 - $t0" | bc -l; }
declare -A rss=()
for walk in find ls tar; do
  for mode in cold warm; do
    declare -A w=()
    for fs in squashfuse-rs squashfuse-rs-s squashfuse_ll squashfuse kernel; do
      w[$fs]=$(for _ in $(seq "$runs"); do $mode "$fs" "$work/rootfs.sqfs" "walk_$walk"; done | median)
    done
    printf '| %s %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f |\n' "$walk" "$mode" "${w[squashfuse-rs]}" "${w[squashfuse-rs-s]}" \
      "${w[squashfuse_ll]}" "${w[squashfuse]}" "${w[kernel]}" "$(echo "${w[squashfuse-rs]} / ${w[kernel]}" | bc -l)" >>"$out"
  done
done
for fs in squashfuse-rs squashfuse_ll; do
  drop_caches; do_mount "$fs" "$work/rootfs.sqfs"; walk_tar
  pid=$(pgrep -n -f "^$( [ $fs = squashfuse-rs ] && echo "$ours" || echo squashfuse_ll)") || pid=""
  rss[$fs]=$( [ -n "$pid" ] && awk '/VmHWM/ {print $2}' "/proc/$pid/status" || echo "?")
  do_umount
done
{ echo; echo "Daemon peak RSS (VmHWM) after \`tar c\` of the rootfs image: squashfuse-rs ${rss[squashfuse-rs]} KiB, squashfuse_ll ${rss[squashfuse_ll]} KiB."; } >>"$out"
cat "$out"
