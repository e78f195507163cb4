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
#   5. issue 16's rows: `ch-run debian.sqfs -- true` (debootstrap's default variant of
#      bookworm, zstd, as bench/efficiency.sh makes it), one at a time and CONCURRENT at once,
#      with the CPU time of everything a start runs (perf stat's task-clock: the supervisor
#      outlives ch-run and is counted too; so is the shared image server, which each CPU
#      sample starts and lets exit before it ends); ours as installed (the image's mount
#      shared between the user's containers, runtime/src/share.rs) and, for reference, with
#      --no-share (a mount per container); and what bounds them, measured alone: the same
#      start from the same tree as a directory image (namespaces, binds, pivot_root, exec:
#      everything but FUSE), a start on an image whose /bin/true is a few hundred bytes (the
#      FUSE mount without reading), and the CPU time of decompressing the files the dynamic
#      `true` maps (libc, ld.so: `sqfs cat`, less a `sqfs cat` of a small file)
#
# Usage: bash bench/chrun.sh [RUNS]   (root; default 7 runs, medians; ~12 min on 2 cores)
#   BENCH_USER (default chtest) runs both ch-runs; STARTS (default 50) starts per sample of 1;
#   PY_STARTS (default 10) starts per sample of 2; DEB_STARTS (default 20) starts per sample
#   of 5; CONCURRENT (default 16); BENCH_DIR (default /var/tmp/sqfs-bench);
#   SECTIONS (default "start read debian") picks the parts to run.
# The whole run holds /tmp/sqfs-bench.lock (flock), as the other benchmarks do.
# Writes bench/results/chrun.md. Needs charliecloud-runtime busybox-static squashfs-tools
# squashfuse fuse3 debootstrap bc linux-perf gcc.
set -euo pipefail
if [ -z "${CHRUN_BENCH_LOCKED:-}" ]; then
  exec env CHRUN_BENCH_LOCKED=1 flock /tmp/sqfs-bench.lock bash "$0" "$@"
fi
runs=${1:-7}
starts=${STARTS:-50}
py_starts=${PY_STARTS:-10}
deb_starts=${DEB_STARTS:-20}
concurrent=${CONCURRENT:-16}
sections=${SECTIONS:-start read debian}
has() { [[ " $sections " == *" $1 "* ]]; }
user=${BENCH_USER:-chtest}
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}; img_dir=$work/chrun; mnt=$work/chrun-mnt
mkdir -p "$work" "$img_dir" "$mnt" "$here/results"
chmod 755 "$work" "$img_dir"
cargo build --release -p runtime -p fusefs -p sqfs-tool --manifest-path "$repo/Cargo.toml" >/dev/null 2>&1
# Stripped, as scripts/install.sh installs it (the release build keeps line tables, 15
# times the size, which every start would map).
bin_dir=$work/chrun-bin; mkdir -p "$bin_dir"; chmod 755 "$bin_dir"
install -m 755 -s "$repo/target/release/ch-run" "$bin_dir/ch-run"
ours=$bin_dir/ch-run
theirs=/usr/bin/ch-run
sqfuse=$repo/target/release/squashfuse-rs
sqfs_tool=$repo/target/release/sqfs
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
if has debian; then
  if [ ! -d "$work/rootfs-std/usr" ]; then
    # debootstrap's default variant (required + important packages), as bench/efficiency.sh.
    debootstrap bookworm "$work/rootfs-std" http://deb.debian.org/debian >/dev/null
  fi
  if ! unsquashfs -s "$img_dir/debian.sqfs" >/dev/null 2>&1; then
    mksq "$work/rootfs-std" "$img_dir/debian.sqfs" zstd -wildcards -e 'proc/*' 'sys/*' 'dev/*'
  fi
  if ! unsquashfs -s "$img_dir/tiny.sqfs" >/dev/null 2>&1; then
    # The busybox tree with /bin/true a static program of a few hundred bytes that only
    # exits: a start on it is everything but the reading of a real command's files.
    make_bb_tree "$img_dir/tiny"; rm "$img_dir/tiny/bin/true"
    printf '%s\n' 'void _start(void) { __asm__ volatile("mov $60, %eax; xor %edi, %edi; syscall"); }' >"$img_dir/true.c"
    gcc -O2 -static -nostdlib -o "$img_dir/tiny/bin/true" "$img_dir/true.c"
    mksq "$img_dir/tiny" "$img_dir/tiny.sqfs" zstd; rm -rf "$img_dir/tiny" "$img_dir/true.c"
  fi
fi
codecs=(zstd gzip)
has read || codecs=()
for c in "${codecs[@]}"; do
  if [ ! -f "$img_dir/big-$c.sqfs" ]; then
    make_bb_tree "$img_dir/big"; ln "$work/data/a" "$img_dir/big/big"
    mksq "$img_dir/big" "$img_dir/big-$c.sqfs" "$c"; rm -rf "$img_dir/big"
  fi
done
big_bytes=$(stat -c %s "$work/data/a")

# ---- helpers ------------------------------------------------------------------------------
# shellcheck source=bench/as-user.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-user.sh"
# CPU ms per run of N sequential runs of "$@": perf stat counts every process the runs
# start, also those that outlive them (ch-run's supervisor).
# CPU_ENV (VAR=VALUE words) goes into the runs' environment; CPU_TAIL runs after the loop,
# still counted (a `sleep` that lets a shared image server reach its idle end and exit).
cpu_time() { local n=$1; shift
  local out; out=$(perf stat -x, -e task-clock -- runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin ${CPU_ENV:-} \
    bash -c 'n=$1; shift
      for ((i = 0; i < n; i++)); do "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }; done
      '"${CPU_TAIL:-}" _ "$n" "$@" 2>&1) || { echo "$out" >&2; return 1; }
  echo "$out" | awk -F, -v n="$n" '/task-clock/ {print $1 / n}'
}
# CPU per start with the shared server counted: it starts with the first run of the sample
# and, idle for 1 s after the last, exits within the sample (perf stat counts a process's
# CPU time when it exits). Charliecloud ignores the variable.
shared_cpu_time() { no_servers; CPU_ENV="CH_RUN_SHARE_IDLE=1" CPU_TAIL="sleep 2.5" cpu_time "$@"; }
# Waits (30 s at most) until the user has no image server left (earlier rows' reach their
# idle end), so that the next sample starts its own.
no_servers() { for _ in $(seq 300); do pgrep -u "$user" -x ch-run-share >/dev/null || return 0; sleep 0.1; done
  echo "an image server of $user did not exit" >&2; return 1; }
# The same with a mount per container (--no-share, through the environment for both).
unshared_cpu_time() { CPU_ENV="CH_RUN_SHARE=no" cpu_time "$@"; }
# CPU ms of the shell loop alone (runuser, bash's fork and exec of /bin/true), to subtract.
loop_cpu() { cpu_time "$1" /bin/true; }
# CPU ms of decompressing files of an image once, by `sqfs cat` (one process per file).
cat_cpu() { local img=$1; shift
  perf stat -x, -e task-clock -- sh -c 'img=$1; shift; for f; do "$0" cat "$img" "$f" >/dev/null; done' \
    "$sqfs_tool" "$img" "$@" 2>&1 | awk -F, '/task-clock/ {print $1}'
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

bb=$img_dir/busybox.sqfs; py=$img_dir/python.sqfs; deb=$img_dir/debian.sqfs; deb_dir=$work/rootfs-std; tiny=$img_dir/tiny.sqfs
load_start=$(cut -d' ' -f1-3 /proc/loadavg); t_start=$(date +%s)
# Warm-up (image files into the page cache, binaries loaded) and a sanity check of both.
for bin in "$ours" "$theirs"; do
  seq_time 2 "$bin" "$bb" -- true >/dev/null
  has start && seq_time 2 "$bin" "$py" -- python3 -c pass >/dev/null
  has debian && seq_time 2 "$bin" "$deb" -- true >/dev/null && seq_time 2 "$bin" "$deb_dir" -- true >/dev/null \
    && seq_time 2 "$bin" "$tiny" -- /bin/true >/dev/null
  [ "$(as_user "$bin" "$bb" -- /bin/busybox cat /etc/passwd | head -c 4)" = root ] || { echo "$bin: no /etc/passwd in container" >&2; exit 1; }
done

# ---- 1, 2, 4: start-up --------------------------------------------------------------------
if has start; then for ((i = 1; i <= runs; i++)); do
  pair bb "$i" seq_time "$starts" IMPL "$bb" -- true
  pair py "$i" seq_time "$py_starts" IMPL "$py" -- python3 -c pass
  pair par "$i" par_time 32 IMPL "$bb" -- true
done; fi

# ---- 5: the Debian image: starts, CPU per start, and what bounds them ----------------------
deb_libs=(/usr/lib/x86_64-linux-gnu/libc.so.6 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)
if has debian; then for ((i = 1; i <= runs; i++)); do
  pair deb "$i" seq_time "$deb_starts" IMPL "$deb" -- true
  pair debpar "$i" par_time "$concurrent" IMPL "$deb" -- true
  pair debcpu "$i" shared_cpu_time "$deb_starts" IMPL "$deb" -- true
  add debns-ours "$(seq_time "$deb_starts" "$ours" --no-share "$deb" -- true)"
  add debparns-ours "$(par_time "$concurrent" "$ours" --no-share "$deb" -- true)"
  add debcpuns-ours "$(unshared_cpu_time "$deb_starts" "$ours" "$deb" -- true)"
  # What bounds a start on a mount of its own: these rows are without sharing.
  pair dircpu "$i" unshared_cpu_time "$deb_starts" IMPL "$deb_dir" -- true
  pair tinycpu "$i" unshared_cpu_time "$deb_starts" IMPL "$tiny" -- /bin/true
  add loopcpu "$(loop_cpu "$deb_starts")"
  add looptailcpu "$(CPU_TAIL="sleep 2.5" loop_cpu "$deb_starts")"
  # Decompressing libc and ld.so, less a `sqfs cat` of /usr/bin/true (its own process cost).
  add libcpu "$(echo "$(cat_cpu "$deb" "${deb_libs[@]}") - 2 * $(cat_cpu "$deb" /usr/bin/true)" | bc -l)"
done; fi

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
met() { (( $(echo "$1 <= 0.5" | bc -l) )) && echo met || echo "not met"; }
out=$here/results/chrun.md
{
  echo "# ch-run (ours) vs Charliecloud 0.31 ch-run"
  echo
  echo "Made by \`SECTIONS=\"$sections\" bash bench/chrun.sh $runs\` (STARTS=$starts, PY_STARTS=$py_starts, DEB_STARTS=$deb_starts, CONCURRENT=$concurrent) at commit $(git -C "$repo" rev-parse --short HEAD) on $(date -u '+%F %H:%M UTC'),"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), Debian $(cat /etc/debian_version)."
  echo "Theirs: $theirs from charliecloud-runtime $(dpkg-query -W -f='${Version}' charliecloud-runtime) (libsquashfuse_ll $(dpkg-query -W -f='${Version}' libsquashfuse0 2>/dev/null || echo '?'))."
  echo "Ours: ch-run stripped, as scripts/install.sh installs it."
  echo "Both run as the unprivileged user \`$user\` (\`runuser -u $user -- env USER=$user HOME=/tmp PATH=/usr/bin:/bin …\`), timed inside that user's shell;"
  echo "ours and theirs alternate in every iteration (order flipped each iteration); medians of $runs iterations; ratio = ours / theirs (< 1: ours faster)."
  echo "The machine is shared: load average (1, 5, 15 min) $load_start at the start of the measurements, $load_end at the end ($minutes min later)."
  echo "Images are owned by \`$user\` (files and image file, as ch-image makes them) and live in $img_dir."
  if has start; then
    bb_o=$(ms "$(med bb-ours)" "$starts"); bb_t=$(ms "$(med bb-theirs)" "$starts")
    py_o=$(ms "$(med py-ours)" "$py_starts"); py_t=$(ms "$(med py-theirs)" "$py_starts")
    par_o=$(ms "$(med par-ours)" 1); par_t=$(ms "$(med par-theirs)" 1)
    py_ver=$(as_user "$ours" "$py" -- python3 -c 'import sys; print(sys.version.split()[0])')
    echo
    echo "## Start-up (ms per start, sequential; image files warm in the host page cache)"
    echo
    echo "| command | image | ours | theirs | ours / theirs | target ≤ 0.5 |"
    echo "|---|---|---|---|---|---|"
    r=$(ratio "$bb_o" "$bb_t"); printf '| `ch-run IMG -- true` (%s runs per sample) | busybox 1.35 static, gzip, %s KiB | %.1f | %.1f | %.2f | %s |\n' \
      "$starts" "$(( $(stat -c %s "$bb") >> 10 ))" "$bb_o" "$bb_t" "$r" "$(met "$r")"
    r=$(ratio "$py_o" "$py_t"); printf '| `ch-run IMG -- python3 -c pass` (%s runs per sample) | Debian bookworm minbase + python3 %s, gzip, %s MiB | %.1f | %.1f | %.2f | %s |\n' \
      "$py_starts" "$py_ver" "$(( $(stat -c %s "$py") >> 20 ))" "$py_o" "$py_t" "$r" "$(met "$r")"
    echo
    echo "## 32 concurrent starts (wall ms for 32 \`ch-run busybox-img -- true\` started at once, then \`wait\`)"
    echo
    echo "| ours | theirs | ours / theirs |"
    echo "|---|---|---|"
    printf '| %.0f | %.0f | %.2f |\n' "$par_o" "$par_t" "$(ratio "$par_o" "$par_t")"
  fi
  if has debian; then
    deb_o=$(ms "$(med deb-ours)" "$deb_starts"); deb_t=$(ms "$(med deb-theirs)" "$deb_starts")
    dp_o=$(ms "$(med debpar-ours)" 1); dp_t=$(ms "$(med debpar-theirs)" 1)
    loop=$(med loopcpu)
    loop_tail=$(med looptailcpu)
    # The shared CPU samples ran the loop with a sleep after it (theirs too): less that loop.
    c_o=$(echo "$(med debcpu-ours) - $loop_tail" | bc -l); c_t=$(echo "$(med debcpu-theirs) - $loop_tail" | bc -l)
    n_o=$(ms "$(med debns-ours)" "$deb_starts"); np_o=$(ms "$(med debparns-ours)" 1)
    cn_o=$(echo "$(med debcpuns-ours) - $loop" | bc -l)
    d_o=$(echo "$(med dircpu-ours) - $loop" | bc -l); d_t=$(echo "$(med dircpu-theirs) - $loop" | bc -l)
    t_o=$(echo "$(med tinycpu-ours) - $loop" | bc -l); t_t=$(echo "$(med tinycpu-theirs) - $loop" | bc -l)
    lib=$(med libcpu)
    echo
    echo "## Issue 16: \`ch-run debian.sqfs -- true\`"
    echo
    echo "debian.sqfs: debootstrap's default variant of Debian bookworm ($work/rootfs-std, as bench/efficiency.sh makes it), zstd,"
    echo "$(( $(stat -c %s "$deb") >> 20 )) MiB, $("$sqfs_tool" info "$deb" 2>/dev/null | awk -F': *' '/^inodes/ {print $2; exit}') inodes. Single starts: $deb_starts per sample, sequential; at once: $concurrent started together, then \`wait\`."
    echo
    echo "| measure | ours | theirs | ours / theirs | target |"
    echo "|---|---:|---:|---:|---|"
    r=$(ratio "$deb_o" "$deb_t"); printf '| `ch-run debian.sqfs -- true` (ms) | %.1f | %.1f | %.2f× | ≤ 0.5×: %s |\n' "$deb_o" "$deb_t" "$r" "$(met "$r")"
    r=$(ratio "$dp_o" "$dp_t"); printf '| %s `ch-run debian.sqfs -- true` at once, wall (ms) | %.0f | %.0f | %.2f× | ≤ 0.5×: %s |\n' "$concurrent" "$dp_o" "$dp_t" "$r" "$(met "$r")"
    printf '| CPU per start, `ch-run debian.sqfs -- true`, shared server included (ms) | %.1f | %.1f | %.2f× | |\n' "$c_o" "$c_t" "$(ratio "$c_o" "$c_t")"
    printf '| *for reference, ours with --no-share:* `ch-run debian.sqfs -- true` (ms) | %.1f | %.1f | %.2f× | |\n' "$n_o" "$deb_t" "$(ratio "$n_o" "$deb_t")"
    printf '| *… with --no-share:* %s at once, wall (ms) | %.0f | %.0f | %.2f× | |\n' "$concurrent" "$np_o" "$dp_t" "$(ratio "$np_o" "$dp_t")"
    printf '| *… with --no-share:* CPU per start (ms) | %.1f | %.1f | %.2f× | |\n' "$cn_o" "$c_t" "$(ratio "$cn_o" "$c_t")"
    printf '| CPU per start, the same tree as a directory image: no FUSE (ms) | %.1f | %.1f | %.2f× | |\n' "$d_o" "$d_t" "$(ratio "$d_o" "$d_t")"
    printf '| CPU per start, `ch-run tiny.sqfs -- /bin/true`: FUSE mount, no reading (ms) | %.1f | %.1f | %.2f× | |\n' "$t_o" "$t_t" "$(ratio "$t_o" "$t_t")"
    printf '| … of which the FUSE mount and its serving (tiny less directory) (ms) | %.1f | %.1f | %.2f× | |\n' \
      "$(echo "$t_o - $d_o" | bc -l)" "$(echo "$t_t - $d_t" | bc -l)" "$(ratio "$(echo "$t_o - $d_o" | bc -l)" "$(echo "$t_t - $d_t" | bc -l)")"
    printf '| … reading the files the dynamic `true` maps (Debian less tiny) (ms) | %.1f | %.1f | %.2f× | |\n' \
      "$(echo "$cn_o - $t_o" | bc -l)" "$(echo "$c_t - $t_t" | bc -l)" "$(ratio "$(echo "$cn_o - $t_o" | bc -l)" "$(echo "$c_t - $t_t" | bc -l)")"
    printf '| CPU of decompressing all of libc.so.6 and ld-linux (2.1 MB) once, `sqfs cat` (ms) | %.1f | | | |\n' "$lib"
    echo
    echo "Ours shares one image server (one FUSE mount, page cache and block cache) between the user's containers of one image"
    echo "(runtime/src/share.rs; on unless \`--no-share\` or \`CH_RUN_SHARE=no\`): the rows without a note are ours as installed."
    echo "The timed rows find a server started by an earlier sample when it is less than its idle time (10 s) old, else start one."
    echo "CPU per start: perf stat's task-clock of $deb_starts sequential starts (every process they start, the supervisor"
    echo "outliving ch-run too), per start, less the same loop running \`/bin/true\` ($(printf '%.2f' "$loop") ms: runuser, bash's fork)."
    echo "The shared row's samples start their own server (CH_RUN_SHARE_IDLE=1) and wait 2.5 s after the loop for it to exit, so"
    echo "that its CPU time (serving every start's reads) is counted, spread over the $deb_starts starts; theirs ran the same loop and"
    echo "wait, and both are less that loop with its wait ($(printf '%.2f' "$loop_tail") ms). The rows below it are without sharing."
    echo "tiny.sqfs: the busybox tree with /bin/true a static program of a few hundred bytes that only exits."
    echo
    echo "What bounds the rows (--no-share, a mount per container). A start on a FUSE mount costs the tiny start ($(printf '%.1f' "$t_o") ms: namespaces, FUSE mount, binds,"
    echo "pivot_root, exec, nothing read; $(printf '%.1f' "$d_o") ms of it without FUSE) plus reading what the command maps. A fresh FUSE mount"
    echo "has an empty page cache, so every start decompresses again the blocks of libc and ld.so that \`true\` touches (the"
    echo "kernel reads 128 KiB around each page fault, so most of the 17; all of them take $(printf '%.1f' "$lib") ms). Tiny start + all 17 blocks ="
    echo "$(printf '%.1f' "$(echo "$t_o + $lib" | bc -l)") ms, + 60% of them = $(printf '%.1f' "$(echo "$t_o + 0.6 * $lib" | bc -l)") ms, against 0.5× of Charliecloud's CPU per start, $(printf '%.1f' "$(echo "$c_t / 2" | bc -l)") ms;"
    echo "$concurrent starts at once on $(nproc) cores need $concurrent × the CPU per start / $(nproc) at least. Sharing lifts it: the starts of"
    echo "one image use one mount, so those blocks are decompressed once, and a start costs about the tiny start ($(printf '%.1f' "$c_o") ms of CPU shared)."
  fi
  if has read; then
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
  fi
  echo
  echo "## All samples (seconds per sample, in run order; CPU rows: ms per start)"
  echo
  echo "| measure | samples |"
  echo "|---|---|"
  for k in bb-ours bb-theirs py-ours py-theirs par-ours par-theirs deb-ours deb-theirs debpar-ours debpar-theirs \
    debcpu-ours debcpu-theirs debns-ours debparns-ours debcpuns-ours dircpu-ours dircpu-theirs tinycpu-ours \
    tinycpu-theirs loopcpu looptailcpu libcpu \
    $(for c in "${codecs[@]}"; do for w in "${readers[@]}"; do echo "read-$c-$w"; done; done); do
    [ -n "${samples[$k]:-}" ] || continue
    printf '| %s | %s|\n' "$k" "$(for v in ${samples[$k]}; do printf '%.3f ' "$v"; done)"
  done
} >"$out"
cat "$out"
