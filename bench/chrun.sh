#!/usr/bin/env bash
# Side-by-side container runtime benchmark: our ch-run (runtime/, in-process FUSE mount of the
# SquashFS image) vs Debian's Charliecloud 0.31 ch-run (charliecloud-runtime, which mounts
# with libsquashfuse_ll), both run as an unprivileged user on the same images, one run,
# ours and theirs alternating within every iteration (the order flips each iteration).
#
#   1. start-up: `ch-run IMG -- true` on a busybox image, STARTS sequential runs per sample
#   2. start-up: `ch-run IMG -- python3 -c pass` on a Debian bookworm rootfs image (debootstrap)
#   3. cold read of a 1 GiB file in the container: `ch-run IMG -- cat /big >/dev/null`
#      (page cache dropped, fresh container) on a zstd and a gzip image; for reference, the
#      same file read through a host mount by squashfuse-rs and by squashfuse_ll
#   4. 32 concurrent starts: 32 `ch-run busybox-img -- true` started at once, wall time
#
# Usage: bash bench/chrun.sh [RUNS]   (root; default 7 runs, medians; ~10 min on 2 cores)
#   BENCH_USER (default chtest) runs both ch-runs; STARTS (default 50) starts per sample of 1;
#   PY_STARTS (default 10) starts per sample of 2; BENCH_DIR (default /var/tmp/sqfs-bench).
# The whole run holds /tmp/sqfs-bench.lock (flock), as the other benchmarks do.
# Writes bench/results/chrun.md. Needs charliecloud-runtime busybox-static squashfs-tools
# squashfuse fuse3 debootstrap bc.
set -euo pipefail
if [ -z "${CHRUN_BENCH_LOCKED:-}" ]; then
  exec env CHRUN_BENCH_LOCKED=1 flock /tmp/sqfs-bench.lock bash "$0" "$@"
fi
runs=${1:-7}
starts=${STARTS:-50}
py_starts=${PY_STARTS:-10}
user=${BENCH_USER:-chtest}
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}; img_dir=$work/chrun; mnt=$work/chrun-mnt
mkdir -p "$work" "$img_dir" "$mnt" "$here/results"
chmod 755 "$work" "$img_dir"
cargo build --release -p runtime -p fusefs --manifest-path "$repo/Cargo.toml" >/dev/null 2>&1
ours=$repo/target/release/ch-run
theirs=/usr/bin/ch-run
sqfuse=$repo/target/release/squashfuse-rs
uid=$(id -u "$user"); gid=$(id -g "$user")

# ---- images (made once, kept in $img_dir) -------------------------------------------------
# Owned by the user, as ch-image would have made them (files and the image file itself).
mksq() { # src img codec [extra mksquashfs args]
  local src=$1 img=$2 codec=$3; shift 3
  mksquashfs "$src" "$img.tmp" -comp "$codec" -force-uid "$uid" -force-gid "$gid" -noappend \
    -no-progress -quiet "$@" >/dev/null
  chown "$user:" "$img.tmp"; mv "$img.tmp" "$img"
}
make_bb_tree() { # dir: busybox + applet links + passwd/group + the directories ch-run binds over
  rm -rf "$1"; mkdir -p "$1"/{bin,etc,dev,proc,sys,tmp,home,mnt}
  cp /bin/busybox "$1/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$1/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:%s:%s::/home/%s:/bin/sh\n' "$user" "$uid" "$gid" "$user" >"$1/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\n' "$user" "$gid" >"$1/etc/group"
  chmod 1777 "$1/tmp"
}
if [ ! -f "$img_dir/busybox.sqfs" ]; then
  make_bb_tree "$img_dir/bb"; mksq "$img_dir/bb" "$img_dir/busybox.sqfs" gzip
fi
if [ ! -f "$img_dir/python.sqfs" ]; then
  if [ ! -f "$work/rootfs-py.stamp" ]; then
    rm -rf "$work/rootfs-py"
    debootstrap --variant=minbase --include=python3 bookworm "$work/rootfs-py" http://deb.debian.org/debian >/dev/null
    touch "$work/rootfs-py.stamp"
  fi
  # Default codec (gzip); /dev, /proc, /sys kept as empty directories.
  mksq "$work/rootfs-py" "$img_dir/python.sqfs" gzip -wildcards -e 'dev/*' 'proc/*' 'sys/*'
fi
if [ ! -s "$work/data/a" ]; then
  mkdir -p "$work/data"
  # 1 GiB of real bytes (libraries and binaries), as bench/fuse.sh makes it.
  { find /usr/lib /usr/bin -type f -size +64k -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c 1G >"$work/data/a"
fi
codecs=(zstd gzip)
for c in "${codecs[@]}"; do
  if [ ! -f "$img_dir/big-$c.sqfs" ]; then
    make_bb_tree "$img_dir/big"; ln "$work/data/a" "$img_dir/big/big"
    mksq "$img_dir/big" "$img_dir/big-$c.sqfs" "$c"; rm -rf "$img_dir/big"
  fi
done
big_bytes=$(stat -c %s "$work/data/a")

# ---- helpers ------------------------------------------------------------------------------
# Everything a ch-run does is timed inside one shell of the user (bash's $EPOCHREALTIME), so
# runuser's own cost (PAM, setuid) is not counted.
as_user() { runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin "$@"; }
# seconds for N sequential runs of "$@" (stdout to /dev/null); fails if one run fails
seq_time() { local n=$1; shift
  as_user bash -c 'n=$1; shift; t0=$EPOCHREALTIME
    for ((i = 0; i < n; i++)); do "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }; done
    t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc -l' _ "$n" "$@"
}
# seconds of wall time for N runs of "$@" started at once; fails if one run fails
par_time() { local n=$1; shift
  as_user bash -c 'n=$1; shift; pids=(); t0=$EPOCHREALTIME
    for ((i = 0; i < n; i++)); do "$@" >/dev/null & pids+=($!); done
    bad=0; for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
    t1=$EPOCHREALTIME; [ "$bad" = 0 ] || { echo "$bad of $n failed: $*" >&2; exit 1; }
    echo "$t1 - $t0" | bc -l' _ "$n" "$@"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
do_mount() { # fs image
  case $1 in
    squashfuse-rs) "$sqfuse" "$2" "$mnt" ;;
    squashfuse_ll) squashfuse_ll "$2" "$mnt" ;;
  esac
  for _ in $(seq 100); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
  echo "mount of $2 by $1 failed" >&2; return 1
}
do_umount() { umount "$mnt" 2>/dev/null || umount -l "$mnt"; for _ in $(seq 100); do mountpoint -q "$mnt" || break; sleep 0.05; done; sleep 0.2; }
# One cold read of /big, seconds: in a fresh container (ours/theirs) or a fresh host mount.
cold_read() { # who image
  drop_caches
  case $1 in
    ours) seq_time 1 "$ours" "$2" -- cat /big ;;
    theirs) seq_time 1 "$theirs" "$2" -- cat /big ;;
    *) do_mount "$1" "$2"; local t0 t1; t0=$(date +%s.%N)
       /bin/busybox cat "$mnt/big" >/dev/null; t1=$(date +%s.%N); do_umount; echo "$t1 - $t0" | bc -l ;;
  esac
}
# Alternate: iteration i runs ours first when i is odd, theirs first when even.
declare -A samples=()
add() { samples[$1]+="$2 "; }
med() { printf '%s\n' ${samples[$1]} | median; }
pair() { # key-prefix i command-with-IMPL... : runs "$@" with IMPL replaced by each binary
  local key=$1 i=$2; shift 2; local order=(ours theirs); [ $((i % 2)) = 1 ] || order=(theirs ours)
  local who bin args a
  for who in "${order[@]}"; do
    bin=$ours; [ "$who" = theirs ] && bin=$theirs
    args=(); for a in "$@"; do [ "$a" = IMPL ] && args+=("$bin") || args+=("$a"); done
    local v; v=$("${args[@]}"); add "$key-$who" "$v"
  done
}

bb=$img_dir/busybox.sqfs; py=$img_dir/python.sqfs
load_start=$(cut -d' ' -f1-3 /proc/loadavg); t_start=$(date +%s)
# Warm-up (image files into the page cache, binaries loaded) and a sanity check of both.
for bin in "$ours" "$theirs"; do
  seq_time 2 "$bin" "$bb" -- true >/dev/null
  seq_time 2 "$bin" "$py" -- python3 -c pass >/dev/null
  [ "$(as_user "$bin" "$bb" -- /bin/busybox cat /etc/passwd | head -c 4)" = root ] || { echo "$bin: no /etc/passwd in container" >&2; exit 1; }
done

# ---- 1, 2, 4: start-up --------------------------------------------------------------------
for ((i = 1; i <= runs; i++)); do
  pair bb "$i" seq_time "$starts" IMPL "$bb" -- true
  pair py "$i" seq_time "$py_starts" IMPL "$py" -- python3 -c pass
  pair par "$i" par_time 32 IMPL "$bb" -- true
done

# ---- 3: cold reads ------------------------------------------------------------------------
readers=(ours theirs squashfuse-rs squashfuse_ll)
for ((i = 1; i <= runs; i++)); do
  for c in "${codecs[@]}"; do
    # rotate the order of the four readers from one iteration to the next
    for ((k = 0; k < ${#readers[@]}; k++)); do
      who=${readers[$(((k + i) % ${#readers[@]}))]}
      v=$(cold_read "$who" "$img_dir/big-$c.sqfs"); add "read-$c-$who" "$v"
    done
  done
done

# ---- report -------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg); minutes=$(( ($(date +%s) - t_start + 30) / 60 ))
ms() { echo "$1 * 1000 / $2" | bc -l; }
ratio() { echo "$1 / $2" | bc -l; }
mbs() { echo "$big_bytes / $1 / 1000000" | bc -l; }
bb_o=$(ms "$(med bb-ours)" "$starts"); bb_t=$(ms "$(med bb-theirs)" "$starts")
py_o=$(ms "$(med py-ours)" "$py_starts"); py_t=$(ms "$(med py-theirs)" "$py_starts")
par_o=$(ms "$(med par-ours)" 1); par_t=$(ms "$(med par-theirs)" 1)
py_ver=$(as_user "$ours" "$py" -- python3 -c 'import sys; print(sys.version.split()[0])')
out=$here/results/chrun.md
{
  echo "# ch-run (ours) vs Charliecloud 0.31 ch-run"
  echo
  echo "Made by \`bash bench/chrun.sh $runs\` (STARTS=$starts, PY_STARTS=$py_starts) at commit $(git -C "$repo" rev-parse --short HEAD) on $(date -u '+%F %H:%M UTC'),"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), Debian $(cat /etc/debian_version)."
  echo "Theirs: $theirs from charliecloud-runtime $(dpkg-query -W -f='${Version}' charliecloud-runtime) (libsquashfuse_ll $(dpkg-query -W -f='${Version}' libsquashfuse0 2>/dev/null || echo '?'))."
  echo "Both run as the unprivileged user \`$user\` (\`runuser -u $user -- env USER=$user HOME=/tmp PATH=/usr/bin:/bin …\`), timed inside that user's shell;"
  echo "ours and theirs alternate in every iteration (order flipped each iteration); medians of $runs iterations; ratio = ours / theirs (< 1: ours faster)."
  echo "The machine is shared: load average (1, 5, 15 min) $load_start at the start of the measurements, $load_end at the end ($minutes min later)."
  echo "Images are owned by \`$user\` (files and image file, as ch-image makes them) and live in $img_dir."
  echo
  echo "## Start-up (ms per start, sequential; image files warm in the host page cache)"
  echo
  echo "| command | image | ours | theirs | ours / theirs | target ≤ 0.5 |"
  echo "|---|---|---|---|---|---|"
  r=$(ratio "$bb_o" "$bb_t"); printf '| `ch-run IMG -- true` (%s runs per sample) | busybox 1.35 static, gzip, %s KiB | %.1f | %.1f | %.2f | %s |\n' \
    "$starts" "$(( $(stat -c %s "$bb") >> 10 ))" "$bb_o" "$bb_t" "$r" "$( (( $(echo "$r <= 0.5" | bc -l) )) && echo met || echo "not met")"
  r=$(ratio "$py_o" "$py_t"); printf '| `ch-run IMG -- python3 -c pass` (%s runs per sample) | Debian bookworm minbase + python3 %s, gzip, %s MiB | %.1f | %.1f | %.2f | %s |\n' \
    "$py_starts" "$py_ver" "$(( $(stat -c %s "$py") >> 20 ))" "$py_o" "$py_t" "$r" "$( (( $(echo "$r <= 0.5" | bc -l) )) && echo met || echo "not met")"
  echo
  echo "## 32 concurrent starts (wall ms for 32 \`ch-run busybox-img -- true\` started at once, then \`wait\`)"
  echo
  echo "| ours | theirs | ours / theirs |"
  echo "|---|---|---|"
  printf '| %.0f | %.0f | %.2f |\n' "$par_o" "$par_t" "$(ratio "$par_o" "$par_t")"
  echo
  echo "## Cold read of a 1 GiB file (MB/s, 10^6 bytes/s)"
  echo
  echo "Page cache dropped before each sample. ch-run columns: the whole \`ch-run IMG -- cat /big >/dev/null\` in a fresh"
  echo "container (start-up included); mount columns: \`busybox cat MNT/big >/dev/null\` on a fresh host mount by root (mount"
  echo "and unmount not timed). The file: the first GiB of the files of /usr/lib and /usr/bin, concatenated; \`cat\` is busybox's everywhere."
  echo
  echo "| codec | image | ch-run ours | ch-run theirs | ours / theirs | squashfuse-rs mount | squashfuse_ll mount | ours / squashfuse-rs |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in "${codecs[@]}"; do
    o=$(mbs "$(med "read-$c-ours")"); t=$(mbs "$(med "read-$c-theirs")")
    f=$(mbs "$(med "read-$c-squashfuse-rs")"); l=$(mbs "$(med "read-$c-squashfuse_ll")")
    printf '| %s | %s MiB | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n' "$c" "$(( $(stat -c %s "$img_dir/big-$c.sqfs") >> 20 ))" \
      "$o" "$t" "$(ratio "$o" "$t")" "$f" "$l" "$(ratio "$o" "$f")"
  done
  echo
  echo "## All samples (seconds per sample, in run order)"
  echo
  echo "| measure | samples |"
  echo "|---|---|"
  for k in bb-ours bb-theirs py-ours py-theirs par-ours par-theirs $(for c in "${codecs[@]}"; do for w in "${readers[@]}"; do echo "read-$c-$w"; done; done); do
    printf '| %s | %s|\n' "$k" "$(for v in ${samples[$k]}; do printf '%.3f ' "$v"; done)"
  done
} >"$out"
cat "$out"
