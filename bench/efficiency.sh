#!/usr/bin/env bash
# Issue 16's table, side by side in one run: squashfuse-rs and ch-run against the kernel's
# own squashfs (mount -o loop) and Charliecloud 0.31 (its mounter, squashfuse_ll, and its
# /usr/bin/ch-run). Every round runs every measure once per contender, the contenders
# taking turns in an order that rotates from round to round; the table gives medians.
#
#   tar     `tar c` of a Debian root filesystem image (zstd), cold, piped to cat
#           (GNU tar reads nothing of a file when its output is /dev/null)
#   mount   mount -> first stat of the root, cold (the binaries too: as installed)
#   seq     sequential read of a 1 GiB file, cold, per codec: MB/s and CPU seconds per
#           GiB (the reader's user+sys, plus the daemon's for FUSE; the kernel decodes in
#           the reader's time, its loop worker's copy of the image is not counted)
#   fio     4 KiB random reads of that file (zstd), fio psync, FIO_SECONDS from cold
#   chrun   `ch-run IMG -- true` as a plain user, warm: a Debian image and a busybox
#           image, one at a time, and CONCURRENT at once (Debian)
# and the FUSE requests of one cold `tar c` by kind (perf's fuse tracepoints).
# The FUSE floor (fusefs's squashfuse-rs-floor, built with --features floor) runs beside
# them in tar, mount and seq: mounted as squashfuse-rs mounts, it answers every request
# from memory (the rootfs's tree with pattern bytes; the 1 GiB file; an empty root), so
# its figures are what FUSE alone costs here. A row whose floor is beyond its target is
# bound by FUSE's interface.
#
# Usage: bash bench/efficiency.sh [ROUNDS]   (root; default 3 rounds; ~25 min on 2 cores)
#   SECTIONS (default "tar mount seq fio chrun"), CODECS (default "lz4 lzo zstd gzip xz"),
#   FIO_SECONDS (10), STARTS (20: starts per ch-run sample), CONCURRENT (16),
#   BENCH_USER (chtest), BENCH_DIR (/var/tmp/sqfs-bench).
# Writes bench/results/efficiency.md (table, all samples, request counts, the command).
# Needs squashfs-tools squashfuse fuse3 fio debootstrap charliecloud-runtime busybox-static
# bc perf (linux-perf; for the request counts only). Holds /tmp/sqfs-bench.lock, as the
# other benchmarks do.
set -euo pipefail
if [ -z "${BENCH_LOCKED:-}" ]; then
  exec env BENCH_LOCKED=1 flock /tmp/sqfs-bench.lock bash "$0" "$@"
fi
rounds=${1:-3}
sections=${SECTIONS:-tar mount seq fio chrun}
read -r -a codecs <<<"${CODECS:-lz4 lzo zstd gzip xz}"
fio_seconds=${FIO_SECONDS:-10}
starts=${STARTS:-20}
concurrent=${CONCURRENT:-16}
user=${BENCH_USER:-chtest}
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}
# Images of its own (other benchmarks share $work and may make theirs differently).
own=$work/efficiency; mnt=$own/mnt; img_dir=$own/chrun; bin=$own/bin
mkdir -p "$work" "$own" "$mnt" "$img_dir" "$bin" "$here/results"
chmod 755 "$work" "$own" "$img_dir" "$bin"
has() { [[ " $sections " == *" $1 "* ]]; }

# ---- binaries: as scripts/install.sh installs them (stripped: the release build keeps line
# tables, 15 times the size, which a cold start would read) -----------------------------
cargo build --release -p fusefs -p runtime -p sqfs-tool --manifest-path "$repo/Cargo.toml" >/dev/null 2>&1
cargo build --release -p fusefs --features floor --bin squashfuse-rs-floor --manifest-path "$repo/Cargo.toml" >/dev/null 2>&1
install -m 755 -s "$repo/target/release/squashfuse-rs" "$bin/squashfuse-rs"
install -m 755 -s "$repo/target/release/squashfuse-rs-floor" "$bin/squashfuse-rs-floor"
install -m 755 -s "$repo/target/release/sqfs" "$bin/sqfs"; sqfs_bin=$bin/sqfs
install -m 755 -s "$repo/target/release/ch-run" "$bin/ch-run"
ours=$bin/squashfuse-rs; floor=$bin/squashfuse-rs-floor; ours_run=$bin/ch-run; theirs_run=/usr/bin/ch-run

# ---- images (made once) ------------------------------------------------------------------
if [ ! -s "$work/data/b" ]; then
  mkdir -p "$work/data"
  # Real bytes, as bench/fuse.sh makes them (head ends the pipe early on purpose).
  { find /usr/lib /usr/bin -type f -size +64k -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c 1G >"$work/data/a"
  { find /usr/share -type f -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c 256M >"$work/data/b"
fi
# An image is made again if it is not one (an interrupted run leaves a partial one).
usable() { [ -f "$1" ] && unsquashfs -s "$1" >/dev/null 2>&1; }
mkimg() { # img src [mksquashfs args]
  local img=$1 src=$2; shift 2
  usable "$img" || { mksquashfs "$src" "$img.tmp" -noappend -no-progress -quiet "$@" >/dev/null && mv "$img.tmp" "$img"; }
}
for c in "${codecs[@]}"; do
  mkimg "$own/seq-$c.sqfs" "$work/data" -comp "$c"
done
if [ ! -d "$work/rootfs-std/usr" ]; then
  # debootstrap's default variant (required + important packages).
  debootstrap bookworm "$work/rootfs-std" http://deb.debian.org/debian >/dev/null
fi
rootfs=$own/rootfs-zstd.sqfs
mkimg "$rootfs" "$work/rootfs-std" -comp zstd -wildcards -e 'proc/*' 'sys/*' 'dev/*'
uid=$(id -u "$user"); gid=$(id -g "$user")
if has chrun; then
  # Owned by the user, as ch-image would have made them.
  mksq_user() { # src img [args]
    local src=$1 img=$2; shift 2
    mksquashfs "$src" "$img.tmp" -force-uid "$uid" -force-gid "$gid" -noappend -no-progress -quiet "$@" >/dev/null
    chown "$user:" "$img.tmp"; mv "$img.tmp" "$img"
  }
  usable "$img_dir/debian.sqfs" || mksq_user "$work/rootfs-std" "$img_dir/debian.sqfs" -comp zstd \
    -wildcards -e 'proc/*' 'sys/*' 'dev/*'
  if ! usable "$img_dir/busybox.sqfs"; then
    # As bench/chrun.sh makes it.
    rm -rf "$img_dir/bb"; mkdir -p "$img_dir"/bb/{bin,etc,dev,proc,sys,tmp,home,mnt}
    cp /bin/busybox "$img_dir/bb/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$img_dir/bb/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:%s:%s::/home/%s:/bin/sh\n' "$user" "$uid" "$gid" "$user" >"$img_dir/bb/etc/passwd"
    printf 'root:x:0:\n%s:x:%s:\n' "$user" "$gid" >"$img_dir/bb/etc/group"
    chmod 1777 "$img_dir/bb/tmp"
    mksq_user "$img_dir/bb" "$img_dir/busybox.sqfs" -comp gzip
  fi
fi

# ---- helpers -----------------------------------------------------------------------------
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
do_mount() { # who image (the floor: FLOOR_FILE or FLOOR_TREE from the caller)
  case $1 in
    ours) "$ours" "$2" "$mnt" ;;
    floor) "$floor" "$2" "$mnt" ;;
    ll) squashfuse_ll "$2" "$mnt" ;;
    kernel) mount -t squashfs -o loop,ro "$2" "$mnt" ;;
  esac
  for _ in $(seq 200); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
  echo "mount of $2 by $1 failed" >&2; return 1
}
do_umount() { umount "$mnt" 2>/dev/null || umount -l "$mnt"; for _ in $(seq 100); do mountpoint -q "$mnt" || break; sleep 0.05; done; sleep 0.2; }
# The daemon serving the mount (none for the kernel).
daemon_pid() { case $1 in ours) pgrep -n -f "^$ours .*$mnt" || true ;; floor) pgrep -n -f "^$floor .*$mnt" || true ;; ll) pgrep -n -f "^squashfuse_ll .*$mnt" || true ;; *) true ;; esac; }
# CPU seconds (user + system, all threads) of process $1 so far.
cpu_of() { [ -n "$1" ] && awk '{printf "%.2f\n", ($14 + $15) / 100}' "/proc/$1/stat" || echo 0; }
declare -A samples=()
add() { samples[$1]+="$2 "; }
med() { printf '%s\n' ${samples[$1]} | median; }
# The contenders in round $2's order: rotated by one each round.
turns() { local -a who=($1); local r=$2 n=${#who[@]} k; for ((k = 0; k < n; k++)); do echo "${who[$(((k + r) % n))]}"; done; }
fs_who="kernel ll ours"; floor_who="kernel ll ours floor"

# The daemon's peak resident memory (kB), kept for the notes: "measure kB".
note_rss() { # who pid measure
  [ "$1" = ours ] && [ -n "$2" ] && awk -v m="$3" '/VmHWM/ {print m, $2}' "/proc/$2/status" >>"$own/rss.txt"
  true
}
tar_cold() { # who
  drop_caches; FLOOR_TREE=1 do_mount "$1" "$rootfs"; local pid c0 t0 t1 c1 rc
  pid=$(daemon_pid "$1"); c0=$(cpu_of "$pid")
  t0=$(now); rc=$( { /usr/bin/time -f '%U %S' bash -c "tar cf - -C '$mnt' . | cat >/dev/null"; } 2>&1 | tail -1); t1=$(now)
  c1=$(cpu_of "$pid")
  note_rss "$1" "$pid" tar
  do_umount
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$rc" | awk -v d="$(echo "$c1 - $c0" | bc -l)" '{print $1 + $2 + d}')"
}
mount_stat() { # who: seconds from the mount command to the first stat of the root, cold
  drop_caches; local t0 t1; t0=$(now); do_mount "$1" "$rootfs"; stat "$mnt" >/dev/null; t1=$(now); do_umount
  echo "$t1 - $t0" | bc -l
}
seq_cold() { # who codec: "seconds cpu-seconds"
  drop_caches; FLOOR_FILE=$work/data/a do_mount "$1" "$own/seq-$2.sqfs"; local pid c0 t0 t1 c1 rc
  pid=$(daemon_pid "$1"); c0=$(cpu_of "$pid")
  t0=$(now); rc=$( { /usr/bin/time -f '%U %S' cat "$mnt/a" >/dev/null; } 2>&1 | tail -1); t1=$(now)
  c1=$(cpu_of "$pid"); note_rss "$1" "$pid" "seq-$2"; do_umount
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$rc" | awk -v d="$(echo "$c1 - $c0" | bc -l)" '{print $1 + $2 + d}')"
}
# The work of a FUSE server less FUSE: CPU seconds of `sqfs cat` of the file, cold (the
# image read from disk and copied out of the page cache, the blocks decoded, nothing
# served); and of `cat` of the image file itself, cold (the copy out of the page cache
# that the kernel's loop worker makes for the kernel's driver, not counted in its figure).
work_cold() { # codec: "sqfs-cat-cpu image-read-cpu"
  local a b
  drop_caches; a=$( { /usr/bin/time -f '%U %S' "$sqfs_bin" cat "$own/seq-$1.sqfs" a >/dev/null; } 2>&1 | tail -1 | awk '{print $1 + $2}')
  drop_caches; b=$( { /usr/bin/time -f '%U %S' cat "$own/seq-$1.sqfs" >/dev/null; } 2>&1 | tail -1 | awk '{print $1 + $2}')
  echo "$a $b"
}
fio_cold() { # who
  drop_caches; FLOOR_FILE=$work/data/a do_mount "$1" "$own/seq-zstd.sqfs"
  fio --name=rand --filename="$mnt/a" --readonly --rw=randread --bs=4k --ioengine=psync \
    --runtime="$fio_seconds" --time_based --output-format=terse --terse-version=3 2>/dev/null | cut -d';' -f8
  note_rss "$1" "$(daemon_pid "$1")" fio
  do_umount
}
# shellcheck source=bench/as-user.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-user.sh"
run_bin() { [ "$1" = ours ] && echo "$ours_run" || echo "$theirs_run"; }

# shellcheck source=bench/vm-memory.sh
. "$(dirname "${BASH_SOURCE[0]}")/vm-memory.sh"
hold_vm_memory
load_start=$(cut -d' ' -f1-3 /proc/loadavg); t_start=$(date +%s)
: >"$own/rss.txt"
if has chrun; then
  for b in "$ours_run" "$theirs_run"; do
    seq_time 2 "$b" "$img_dir/debian.sqfs" -- true >/dev/null
    seq_time 2 "$b" "$img_dir/busybox.sqfs" -- true >/dev/null
  done
fi
for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds" >&2
  if has tar; then for w in $(turns "$floor_who" "$r"); do
    read -r s c < <(tar_cold "$w"); add "tar-$w" "$s"; add "tarcpu-$w" "$c"; done; fi
  if has mount; then for w in $(turns "$floor_who" "$r"); do add "mount-$w" "$(mount_stat "$w")"; done; fi
  if has seq; then for c in "${codecs[@]}"; do for w in $(turns "$fs_who" "$r"); do
    add load-seq "$(cut -d' ' -f1 /proc/loadavg)"
    read -r s u < <(seq_cold "$w" "$c"); add "seq-$c-$w" "$s"; add "cpu-$c-$w" "$u"; done; done
    # The floor serves the file from memory: one codec-free sample per round.
    read -r s u < <(seq_cold floor "${codecs[0]}"); add "seq-floor" "$s"; add "cpu-floor" "$u"
    for c in "${codecs[@]}"; do read -r a b < <(work_cold "$c"); add "work-$c" "$a"; add "imgread-$c" "$b"; done; fi
  if has fio; then for w in $(turns "$floor_who" "$r"); do add "fio-$w" "$(fio_cold "$w")"; done; fi
  if has chrun; then for w in $(turns "ours theirs" "$r"); do
    add "deb-$w" "$(seq_time "$starts" "$(run_bin "$w")" "$img_dir/debian.sqfs" -- true)"
    add "bb-$w" "$(seq_time "$starts" "$(run_bin "$w")" "$img_dir/busybox.sqfs" -- true)"
    add "par-$w" "$(par_time "$concurrent" "$(run_bin "$w")" "$img_dir/debian.sqfs" -- true)"
  done; fi
done

# FUSE requests of one cold `tar c`, by kind (READ, READDIRPLUS, READLINK, ...).
requests() { # who
  command -v perf >/dev/null || { echo "(perf not installed)"; return; }
  drop_caches; do_mount "$1" "$rootfs"
  # The tracepoint sees every FUSE connection on the machine: keep this mount's (its number
  # is the minor of the mount's device).
  local conn; conn=$(mountpoint -d "$mnt" | cut -d: -f2)
  perf record -q -a -e fuse:fuse_request_send -o "$own/requests.data" -- \
    bash -c "tar cf - -C '$mnt' . | cat >/dev/null" >/dev/null 2>&1 || true
  do_umount
  perf script -i "$own/requests.data" 2>/dev/null | grep " connection $conn " | grep -o '(FUSE_[A-Z]*)' | tr -d '()' | sed 's/^FUSE_//' |
    sort | uniq -c | sort -rn | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1} END {print ""}'
}
if has tar; then req_ours=$(requests ours); req_ll=$(requests ll); req_floor=$(FLOOR_TREE=1 requests floor); fi

# ---- report ------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg); minutes=$(( ($(date +%s) - t_start + 30) / 60 ))
calc() { echo "$@" | bc -l; }
f() { printf "%.${1}f" "$2"; }
met() { # value op target
  if (( $(calc "$1 $2 $3") )); then echo met; else echo "not met"; fi
}
gib=1073741824; big=$(stat -c %s "$work/data/a")
out=$here/results/efficiency.md
{
  echo "# Issue 16: squashfuse-rs and ch-run against the kernel and Charliecloud"
  echo
  echo "Made by \`bash bench/efficiency.sh $rounds\` (SECTIONS=\"$sections\" CODECS=\"${codecs[*]}\" FIO_SECONDS=$fio_seconds STARTS=$starts CONCURRENT=$concurrent)"
  echo "at commit $(git -C "$repo" rev-parse --short HEAD) on $(date -u '+%F %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
  echo "kernel $(uname -r), Debian $(cat /etc/debian_version). Charliecloud: /usr/bin/ch-run $(dpkg-query -W -f='${Version}' charliecloud-runtime 2>/dev/null || echo '?'),"
  echo "squashfuse_ll $(dpkg-query -W -f='${Version}' squashfuse 2>/dev/null || echo '?') (its mounter). Ours: squashfuse-rs and ch-run stripped, as scripts/install.sh installs them."
  echo "Medians of $rounds rounds; in each round every contender runs every measure once, in an order that rotates."
  echo "Cold: page cache dropped, fresh mount. The machine is shared: load average $load_start at the start, $load_end at the end ($minutes min later)."
  echo "The virtual machine's memory: $vm_memory_note (bench/vm-memory.sh)."
  echo
  echo "| measure | kernel | Charliecloud | squashfuse-rs / ch-run | ratio | target | | FUSE floor | floor ratio |"
  echo "|---|---:|---:|---:|---:|---|---|---:|---:|"
  if has tar; then
    k=$(med tar-kernel); l=$(med tar-ll); o=$(med tar-ours); r=$(calc "$o / $k"); p=$(med tar-floor)
    echo "| \`tar c\` of the rootfs, cold (s) | $(f 2 "$k") | $(f 2 "$l") | $(f 2 "$o") | $(f 2 "$r")× | ≤ 0.8× | $(met "$r" "<=" 0.8) | $(f 2 "$p") | $(f 2 "$(calc "$p / $k")")× |"
  fi
  if has mount; then
    k=$(calc "$(med mount-kernel) * 1000"); l=$(calc "$(med mount-ll) * 1000"); o=$(calc "$(med mount-ours) * 1000"); r=$(calc "$o / $k"); p=$(calc "$(med mount-floor) * 1000")
    echo "| mount → first stat of the root, cold (ms) | $(f 1 "$k") | $(f 1 "$l") | $(f 1 "$o") | $(f 2 "$r")× | ≤ 1.0× | $(met "$r" "<=" 1.0) | $(f 1 "$p") | $(f 2 "$(calc "$p / $k")")× |"
  fi
  if has seq; then
    declare -A want=([lzo]=1.5 [lz4]=2)
    p=$(calc "$big / $(med seq-floor) / 1000000")
    for c in "${codecs[@]}"; do
      [ -n "${want[$c]:-}" ] || continue
      k=$(calc "$big / $(med "seq-$c-kernel") / 1000000"); l=$(calc "$big / $(med "seq-$c-ll") / 1000000"); o=$(calc "$big / $(med "seq-$c-ours") / 1000000"); r=$(calc "$o / $k")
      echo "| sequential $c (MB/s) | $(f 0 "$k") | $(f 0 "$l") | $(f 0 "$o") | $(f 2 "$r")× | ≥ ${want[$c]}× | $(met "$r" ">=" "${want[$c]}") | $(f 0 "$p") | $(f 2 "$(calc "$p / $k")")× |"
    done
    p=$(calc "$(med cpu-floor) * $gib / $big")
    for c in "${codecs[@]}"; do
      k=$(calc "$(med "cpu-$c-kernel") * $gib / $big"); l=$(calc "$(med "cpu-$c-ll") * $gib / $big"); o=$(calc "$(med "cpu-$c-ours") * $gib / $big"); r=$(calc "$o / $k")
      echo "| CPU s per GiB (reader + daemon), $c | $(f 2 "$k") | $(f 2 "$l") | $(f 2 "$o") | $(f 2 "$r")× | ≤ 1.0× | $(met "$r" "<=" 1.0) | $(f 2 "$p") | $(f 2 "$(calc "$p / $k")")× |"
    done
  fi
  if has fio; then
    k=$(med fio-kernel); l=$(med fio-ll); o=$(med fio-ours); r=$(calc "$o / $k"); p=$(med fio-floor)
    echo "| 4 KiB random reads (fio, ${fio_seconds} s from cold), zstd (IOPS) | $(f 0 "$k") | $(f 0 "$l") | $(f 0 "$o") | $(f 2 "$r")× | ≥ 1.5× | $(met "$r" ">=" 1.5) | $(f 0 "$p") | $(f 2 "$(calc "$p / $k")")× |"
  fi
  if has chrun; then
    t=$(calc "$(med deb-theirs) * 1000 / $starts"); o=$(calc "$(med deb-ours) * 1000 / $starts"); r=$(calc "$o / $t")
    echo "| \`ch-run debian.sqfs -- true\` (ms) | — | $(f 1 "$t") | $(f 1 "$o") | $(f 2 "$r")× | ≤ 0.5× | $(met "$r" "<=" 0.5) | | |"
    t=$(calc "$(med par-theirs) * 1000"); o=$(calc "$(med par-ours) * 1000"); r=$(calc "$o / $t")
    echo "| $concurrent \`ch-run debian.sqfs -- true\` at once, wall (ms) | — | $(f 0 "$t") | $(f 0 "$o") | $(f 2 "$r")× | ≤ 0.5× | $(met "$r" "<=" 0.5) | | |"
    t=$(calc "$(med bb-theirs) * 1000 / $starts"); o=$(calc "$(med bb-ours) * 1000 / $starts"); r=$(calc "$o / $t")
    echo "| \`ch-run busybox.sqfs -- true\` (ms) | — | $(f 1 "$t") | $(f 1 "$o") | $(f 2 "$r")× | ≤ 0.5× | $(met "$r" "<=" 0.5) | | |"
  fi
  echo
  echo "Ratio: ours / the kernel's for the filesystem rows, ours / Charliecloud's for the ch-run rows."
  echo "Charliecloud's column is squashfuse_ll (what its ch-run mounts with) for the filesystem rows."
  echo "FUSE floor: squashfuse-rs-floor, mounted as squashfuse-rs, answering every request from memory with no work"
  echo "(tar: the rootfs's tree, pattern bytes; sequential and fio: the 1 GiB file, codec-free, so one figure for every codec;"
  echo "mount: an empty root). Floor ratio: the floor / the kernel's: past a row's target, FUSE alone misses it."
  if has seq; then
    echo
    echo "Where the CPU seconds per GiB go (medians; the sequential rows). *FUSE*: the floor's reader + daemon, what serving the"
    echo "bytes through FUSE costs with no work; *decode*: \`sqfs cat\` of the file, cold (our decoder and the image read, no FUSE);"
    echo "*least through FUSE*: the two added, the least a FUSE server with this decoder can spend; *image copy*: \`cat\` of the image"
    echo "file, cold, the copy out of the page cache that the kernel's loop worker makes for its driver and that the kernel's figure"
    echo "leaves out."
    echo
    echo "| codec | kernel | squashfuse-rs | FUSE | decode | least through FUSE | least / kernel | image copy | kernel + image copy |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    p=$(calc "$(med cpu-floor) * $gib / $big")
    for c in "${codecs[@]}"; do
      k=$(calc "$(med "cpu-$c-kernel") * $gib / $big"); o=$(calc "$(med "cpu-$c-ours") * $gib / $big")
      w=$(calc "$(med "work-$c") * $gib / $big"); i=$(calc "$(med "imgread-$c") * $gib / $big")
      echo "| $c | $(f 2 "$k") | $(f 2 "$o") | $(f 2 "$p") | $(f 2 "$w") | $(f 2 "$(calc "$p + $w")") | $(f 2 "$(calc "($p + $w) / $k")")× | $(f 2 "$i") | $(f 2 "$(calc "$k + $i")") |"
    done
  fi
  if has seq; then
    echo
    echo "Cores busy while reading sequentially (reader + daemon CPU seconds / wall seconds, medians), and the MB/s that our"
    echo "CPU per GiB would give with both cores ours alone (2 / CPU s per GiB). 1-minute load average when the sequential samples"
    echo "started: median $(med load-seq) (2 cores)."
    echo
    echo "| codec | kernel | squashfuse-rs | FUSE floor | squashfuse-rs, both cores: MB/s | / kernel's MB/s |"
    echo "|---|---:|---:|---:|---:|---:|"
    pf=$(calc "$(med cpu-floor) / $(med seq-floor)")
    for c in "${codecs[@]}"; do
      [ -n "${want[$c]:-}" ] || continue
      kb=$(calc "$(med "cpu-$c-kernel") / $(med "seq-$c-kernel")"); ob=$(calc "$(med "cpu-$c-ours") / $(med "seq-$c-ours")")
      best=$(calc "2 * $big / $(med "cpu-$c-ours") / 1000000"); k=$(calc "$big / $(med "seq-$c-kernel") / 1000000")
      echo "| $c | $(f 2 "$kb") | $(f 2 "$ob") | $(f 2 "$pf") | $(f 0 "$best") | $(f 2 "$(calc "$best / $k")")× |"
    done
  fi
  echo
  echo "Images: the rootfs is debootstrap's default variant of Debian bookworm, $(find "$work/rootfs-std" -xdev | wc -l) entries,"
  echo "zstd ($(( $(stat -c %s "$rootfs") >> 20 )) MiB); the sequential file is the first GiB of the files of /usr/lib and /usr/bin,"
  echo "concatenated, in an image per codec (mksquashfs defaults); ch-run's Debian image is the same tree (zstd, owned by"
  echo "\`$user\`), its busybox image busybox 1.35 static (gzip). ch-run rows: as \`$user\`, warm, timed inside the user's"
  echo "shell, $starts starts per sample; the $concurrent concurrent starts are one sample."
  if has tar; then
    echo
    echo "FUSE requests of one cold \`tar c\` of the rootfs: squashfuse-rs: $req_ours; squashfuse_ll: $req_ll; the floor: $req_floor."
    echo "CPU seconds of the \`tar c\` (tar + cat, + the daemon for FUSE), medians: kernel $(med tarcpu-kernel), squashfuse_ll $(med tarcpu-ll), squashfuse-rs $(med tarcpu-ours), the floor $(med tarcpu-floor)."
  fi
  echo
  echo "squashfuse-rs's peak resident memory (VmHWM, the daemon's whole life), at most, by measure (limit 64 MiB = 65536 kB):"
  echo "$(awk '{if ($2 > m[$1]) m[$1] = $2} END {for (k in m) printf "%s %d kB; ", k, m[k]}' "$own/rss.txt" | sed 's/; $/./')"
  echo
  echo "## All samples (seconds, IOPS for fio; in run order)"
  echo
  echo "| measure | samples |"
  echo "|---|---|"
  for k in $(printf '%s\n' "${!samples[@]}" | sort); do
    printf '| %s | %s|\n' "$k" "$(for v in ${samples[$k]}; do printf '%.3f ' "$v"; done)"
  done
} >"$out"
cat "$out"
