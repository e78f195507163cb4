#!/usr/bin/env bash
# ch-run under srun, side by side with Debian's Charliecloud 0.31 ch-run (which links
# libsquashfuse_ll), on a real Slurm (scripts/slurm-up.sh), on this machine as one node:
#   srun -n R [--overcommit] ch-run [--join] IMG -- true          (R = 1, 8, 32)
#   srun -n R [--overcommit] ch-run [--join] IMG -- sh -c 'cat /f256 >/dev/null'
#                                             (256 MiB per rank, page cache dropped first; the
#                                             output stays in the container: through srun's
#                                             stdout forwarding it would measure that instead)
# and across the two simulated nodes of scripts/slurm-nodes.sh (partition two), one node vs two:
#   srun -p two -N 1|2 -n R [--overcommit] ch-run [--join] IMG -- …  (R = 8, 32; the same commands)
# with the image and both ch-runs where both nodes see them (the nodes have their own /tmp,
# /var/tmp, /run and /dev/shm; the rest of the file system is shared, as on a cluster).
# Reports the step's wall time (median of RUNS) and the peak number of FUSE connections
# (one per mount, on every node) seen in /sys/fs/fuse/connections while the step ran (median
# of RUNS too: the count is the whole machine's, and a mount someone else makes or removes
# during a step moves it), and for the `-- true` rows what `srun -n R true` costs with no
# container at all (Slurm's own share).
#
# Usage (root; Slurm up; user chtest): bash bench/slurm.sh [RUNS]   (default 5)
# Writes bench/results/slurm.md.
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd); repo=$(dirname "$here")
work=${BENCH_DIR:-/var/tmp/sqfs-bench}/slurm; mkdir -p "$work" "$here/results"
cargo build --release -p runtime --manifest-path "$repo/Cargo.toml" >/dev/null
install -m 755 "$repo/target/release/ch-run" "$work/ch-run"
theirs=/usr/bin/ch-run
user=chtest
# Where the simulated nodes see the image and our ch-run (Charliecloud's is in /usr).
shared=${BENCH_SHARED:-/srv/sqfs-bench}; mkdir -p "$shared"; chmod 755 "$shared"
sinfo -h -N -o '%T' | grep -qE 'idle|mixed' || { echo "no Slurm node idle: bash scripts/slurm-up.sh" >&2; exit 1; }
[ "$(sinfo -h -N -p two -o '%T' | grep -cE 'idle|mixed')" -eq 2 ] \
  || { echo "the two simulated nodes are not up: bash scripts/slurm-up.sh" >&2; exit 1; }
[ -x "$theirs" ] || { echo "install charliecloud-runtime for $theirs" >&2; exit 1; }

# ---- image: busybox + a 256 MiB file of real bytes ----------------------------------------
img=$work/bench.sqfs
if [ ! -s "$img" ]; then
  root=$work/root; rm -rf "$root"
  mkdir -p "$root"/{bin,etc,dev,proc,sys,tmp,home,mnt}
  cp /bin/busybox "$root/bin/"; for a in sh cat true; do ln -s busybox "$root/bin/$a"; done
  touch "$root/etc/passwd" "$root/etc/group" "$root/etc/hosts" "$root/etc/resolv.conf"
  { find /usr/lib /usr/bin -type f -size +64k -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } | head -c 256M >"$root/f256"
  chown -R "$user:$user" "$root"
  mksquashfs "$root" "$img" -noappend -quiet -no-progress -comp zstd >/dev/null
  rm -rf "$root"
fi
chmod 644 "$img"; chmod 755 "$work"
# (The copies go at exit; the image stays in $work for the next run.)
trap 'rm -f "$shared/bench.sqfs" "$shared/ch-run"; rmdir "$shared" 2>/dev/null || true' EXIT
cp "$img" "$shared/bench.sqfs"; install -m 755 "$work/ch-run" "$shared/ch-run"

# Each simulated node's own /dev/shm, through its slurmd (started with -N NAME).
node_shms() {
  local pid
  for pid in $(pgrep -x slurmd); do
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE -- '-N chnode[0-9]+ ?$' && echo "/proc/$pid/root/dev/shm"
  done
}

mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections
fuse_count() { find /sys/fs/fuse/connections -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# Where a step runs: "host" (this machine, the default partition) or "N1"/"N2" (one or
# both simulated nodes); what srun needs for it, and the image and ch-run it can reach.
# Across two nodes the ranks are split evenly (--ntasks-per-node; with --overcommit Slurm
# splits them evenly itself): Slurm's own split of -n 8 -N 2 here is 7 and 1 (8 CPUs a
# node), where Charliecloud's --join, which takes every node's group size from the first
# node's count, leaves the second node's group unfinished in /dev/shm and that node's next
# step fails.
where=host
placement() { # ranks -> srun arguments
  case $where in
    host) ;;
    N1) echo "-p two -N 1 --chdir=$shared" ;;
    N2) echo "-p two -N 2 --chdir=$shared"
        [ "$1" -gt 16 ] || echo "--ntasks-per-node=$(($1 / 2))" ;;
  esac
}
# More ranks than a node's 8 CPUs need --overcommit.
overcommit() { # ranks
  local nodes=1; [ "$where" = N2 ] && nodes=2
  [ "$1" -gt $((8 * nodes)) ] && echo --overcommit
  return 0
}

# One step; prints "seconds peak_fuse_connections".
step() { # runtime join ranks cmd...
  local rt=$1 join=$2 ranks=$3; shift 3
  local bin=$work/ch-run image=$img
  [ "$where" = host ] || { bin=$shared/ch-run; image=$shared/bench.sqfs; }
  [ "$rt" = theirs ] && bin=$theirs
  local jflag=(); [ "$join" = join ] && jflag=(--join)
  local over; over=($(overcommit "$ranks") $(placement "$ranks"))
  local base; base=$(fuse_count)
  local peakf; peakf=$(mktemp)
  ( peak=0; while :; do n=$(( $(fuse_count) - base )); [ $n -gt $peak ] && { peak=$n; echo $peak >"$peakf"; }; sleep 0.01; done ) &
  local sampler=$!
  local t0 t1
  t0=$(date +%s.%N)
  local ok=ok
  # Charliecloud's --join leaves its /dev/shm objects behind when a group fails, and every
  # later group with the same tag then fails: clean up as its documentation says to, and
  # count what each step leaves.
  local shm shms; shms=(/dev/shm $(node_shms))
  for shm in "${shms[@]}"; do rm -f "$shm"/ch-run_shm-* "$shm"/sem.ch-run_sem-*; done
  runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin \
    srun -n "$ranks" "${over[@]}" "$bin" "${jflag[@]}" "$image" -- "$@" >/dev/null 2>"$work/step.err" \
    || { ok=fail; echo "step failed: $where $rt $join $ranks $*: $(grep -v '^srun' "$work/step.err" | head -1)" >&2; }
  t1=$(date +%s.%N)
  sleep 0.05; kill $sampler; wait $sampler 2>/dev/null || true
  local peak; peak=$(cat "$peakf" 2>/dev/null || true)
  for shm in "${shms[@]}"; do
    [ -z "$(ls "$shm" | grep ch-run || true)" ] || echo "left in $shm after $where $rt $join $ranks: $(ls "$shm" | grep ch-run | tr '\n' ' ')" >&2
  done
  echo "$(echo "$t1 - $t0" | bc -l) ${peak:-0} $ok"
  rm -f "$peakf"
}

# The same srun without any container (the `-- true` rows): what Slurm alone costs here.
bare() { # ranks
  local over; over=($(overcommit "$1") $(placement "$1"))
  local t0 t1; t0=$(date +%s.%N)
  if ! runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin srun -n "$1" "${over[@]}" /bin/true >/dev/null 2>&1; then
    echo "bare srun -n $1 failed" >&2; return
  fi
  t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

results=$here/results/slurm.md
header="| command | ranks | --join | ours (s) | Charliecloud (s) | ours / theirs | srun alone (s) | FUSE mounts ours / theirs | failed steps ours / theirs |"
{
  echo "# ch-run under srun vs Charliecloud 0.31"
  echo
  echo "Made by \`bash bench/slurm.sh $runs\` on $(date -u +%Y-%m-%d) at commit $(git -C "$repo" rev-parse --short HEAD),"
  echo "$(nproc) cores, $(uname -r), Slurm $(sinfo --version | cut -d' ' -f2) (scripts/slurm-up.sh), image: busybox + a 256 MiB file, zstd."
  echo "Wall time of the whole srun step, median of $runs; peak FUSE connections seen during the step (one per mount, all nodes; median of $runs, as the count is the machine's: others' mounts move it)."
  echo "256 MiB reads: page cache dropped before each step; every rank reads the same file."
  echo
  echo "## One node: this machine"
  echo
  echo "$header"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$results"

# The rows: every command, rank count in $@, with and without --join, at each of $wheres.
declare -A alone_by=()
rows() { # ranks...
  local what ranks join rt a r mo mt po pt ma label nodes_col secs peak status
  for what in true read; do
    for ranks in "$@"; do
      for join in nojoin join; do
       for where in $wheres; do
        nodes_col=; [ "$where" = host ] || nodes_col="${where#N} | "
        ours=(); theirs_t=(); alone=(); pk_o=(); pk_t=(); fail_o=0; fail_t=0
        for _ in $(seq "$runs"); do
          # Once per rank count (the nojoin pass); the join row shows the same figure.
          if [ "$what" = true ] && [ "$join" = nojoin ]; then a=$(bare "$ranks"); [ -n "$a" ] && alone+=("$a"); fi
          for rt in ours theirs; do
            [ "$what" = read ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
            if [ "$what" = true ]; then r=$(step $rt $join "$ranks" true); else r=$(step $rt $join "$ranks" sh -c 'cat /f256 >/dev/null'); fi
            read -r secs peak status <<<"$r"
            if [ $rt = ours ]; then
              ours+=("$secs"); pk_o+=("$peak"); [ "$status" = ok ] || fail_o=$((fail_o + 1))
            else
              theirs_t+=("$secs"); pk_t+=("$peak"); [ "$status" = ok ] || fail_t=$((fail_t + 1))
            fi
          done
        done
        mo=$(printf '%s\n' "${ours[@]}" | median); mt=$(printf '%s\n' "${theirs_t[@]}" | median)
        po=$(printf '%s\n' "${pk_o[@]}" | median); pt=$(printf '%s\n' "${pk_t[@]}" | median)
        [ ${#alone[@]} -gt 0 ] && alone_by[$where:$ranks]=$(printf '%.3f' "$(printf '%s\n' "${alone[@]}" | median)")
        ma=-; [ "$what" = true ] && ma=${alone_by[$where:$ranks]:--}
        label='`-- true`'; [ "$what" = read ] && label='`-- sh -c "cat /f256 >/dev/null"`'
        printf '| %s | %s%s | %s | %.3f | %.3f | %.2f | %s | %s / %s | %s / %s |\n' "$label" "$nodes_col" "$ranks" \
          "$([ $join = join ] && echo yes || echo no)" "$mo" "$mt" "$(echo "$mo / $mt" | bc -l)" "$ma" "$po" "$pt" \
          "$fail_o" "$fail_t" >>"$results"
        echo "$where $what ranks=$ranks $join: ours $mo s, theirs $mt s, mounts $po / $pt" >&2
       done
      done
    done
  done
}

wheres=host rows 1 8 32
{
  echo
  echo "## One simulated node vs two (\`srun -p two -N 1|2\`, scripts/slurm-nodes.sh)"
  echo
  echo "$header" | sed 's/| ranks |/| nodes | ranks |/'
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >>"$results"
wheres="N1 N2" rows 8 32
echo >>"$results"
echo "Written $results" >&2
