#!/usr/bin/env bash
# ch-run under srun, side by side with Debian's Charliecloud 0.31 ch-run (which links
# libsquashfuse_ll), on a real one-node Slurm (scripts/slurm-up.sh):
#   srun -n R [--overcommit] ch-run [--join] IMG -- true          (R = 1, 8, 32)
#   srun -n R [--overcommit] ch-run [--join] IMG -- sh -c 'cat /f256 >/dev/null'
#                                             (256 MiB per rank, page cache dropped first; the
#                                             output stays in the container: through srun's
#                                             stdout forwarding it would measure that instead)
# Reports the step's wall time (median of RUNS) and the peak number of FUSE connections
# (one per mount) seen in /sys/fs/fuse/connections while the step ran, and for the `-- true`
# rows what `srun -n R true` costs with no container at all (Slurm's own share).
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
sinfo -h -N -o '%T' | grep -qE 'idle|mixed' || { echo "no Slurm node idle: bash scripts/slurm-up.sh" >&2; exit 1; }
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

mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections
fuse_count() { find /sys/fs/fuse/connections -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# One step; prints "seconds peak_fuse_connections".
step() { # runtime join ranks cmd...
  local rt=$1 join=$2 ranks=$3; shift 3
  local bin=$work/ch-run; [ "$rt" = theirs ] && bin=$theirs
  local jflag=(); [ "$join" = join ] && jflag=(--join)
  local over=(); [ "$ranks" -gt 8 ] && over=(--overcommit)
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
  rm -f /dev/shm/ch-run_shm-* /dev/shm/sem.ch-run_sem-*
  runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin \
    srun -n "$ranks" "${over[@]}" "$bin" "${jflag[@]}" "$img" -- "$@" >/dev/null 2>"$work/step.err" \
    || { ok=fail; echo "step failed: $rt $join $ranks $*: $(grep -v '^srun' "$work/step.err" | head -1)" >&2; }
  t1=$(date +%s.%N)
  sleep 0.05; kill $sampler; wait $sampler 2>/dev/null || true
  local peak; peak=$(cat "$peakf" 2>/dev/null || true)
  [ -z "$(ls /dev/shm | grep ch-run || true)" ] || echo "left in /dev/shm after $rt $join $ranks: $(ls /dev/shm | grep ch-run | tr '\n' ' ')" >&2
  echo "$(echo "$t1 - $t0" | bc -l) ${peak:-0} $ok"
  rm -f "$peakf"
}

# The same srun without any container (the `-- true` rows): what Slurm alone costs here.
bare() { # ranks
  local over=(); [ "$1" -gt 8 ] && over=(--overcommit)
  local t0 t1; t0=$(date +%s.%N)
  if ! runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin srun -n "$1" "${over[@]}" /bin/true >/dev/null 2>&1; then
    echo "bare srun -n $1 failed" >&2; return
  fi
  t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

results=$here/results/slurm.md
{
  echo "# ch-run under srun vs Charliecloud 0.31"
  echo
  echo "Made by \`bash bench/slurm.sh $runs\` on $(date -u +%Y-%m-%d) at commit $(git -C "$repo" rev-parse --short HEAD),"
  echo "$(nproc) cores, $(uname -r), one-node Slurm $(sinfo --version | cut -d' ' -f2) (scripts/slurm-up.sh), image: busybox + a 256 MiB file, zstd."
  echo "Wall time of the whole srun step, median of $runs; peak FUSE connections seen during the step (one per mount)."
  echo "256 MiB reads: page cache dropped before each step; every rank reads the same file."
  echo
  echo "| command | ranks | --join | ours (s) | Charliecloud (s) | ours / theirs | srun alone (s) | FUSE mounts ours / theirs | failed steps ours / theirs |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$results"

declare -A alone_by=()
for what in true read; do
  for ranks in 1 8 32; do
    for join in nojoin join; do
      ours=(); theirs_t=(); alone=(); pk_o=0; pk_t=0; fail_o=0; fail_t=0
      for _ in $(seq "$runs"); do
        # Once per rank count (the nojoin pass); the join row shows the same figure.
        if [ "$what" = true ] && [ "$join" = nojoin ]; then a=$(bare "$ranks"); [ -n "$a" ] && alone+=("$a"); fi
        for rt in ours theirs; do
          [ "$what" = read ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
          if [ "$what" = true ]; then r=$(step $rt $join "$ranks" true); else r=$(step $rt $join "$ranks" sh -c 'cat /f256 >/dev/null'); fi
          set -- $r
          if [ $rt = ours ]; then
            ours+=("$1"); [ "$2" -gt $pk_o ] && pk_o=$2; [ "$3" = ok ] || fail_o=$((fail_o + 1))
          else
            theirs_t+=("$1"); [ "$2" -gt $pk_t ] && pk_t=$2; [ "$3" = ok ] || fail_t=$((fail_t + 1))
          fi
        done
      done
      mo=$(printf '%s\n' "${ours[@]}" | median); mt=$(printf '%s\n' "${theirs_t[@]}" | median)
      [ ${#alone[@]} -gt 0 ] && alone_by[$ranks]=$(printf '%.3f' "$(printf '%s\n' "${alone[@]}" | median)")
      ma=-; [ "$what" = true ] && ma=${alone_by[$ranks]:--}
      label='`-- true`'; [ "$what" = read ] && label='`-- sh -c "cat /f256 >/dev/null"`'
      printf '| %s | %s | %s | %.3f | %.3f | %.2f | %s | %s / %s | %s / %s |\n' "$label" "$ranks" \
        "$([ $join = join ] && echo yes || echo no)" "$mo" "$mt" "$(echo "$mo / $mt" | bc -l)" "$ma" "$pk_o" "$pk_t" \
        "$fail_o" "$fail_t" >>"$results"
      echo "$what ranks=$ranks $join: ours $mo s, theirs $mt s, mounts $pk_o / $pk_t" >&2
    done
  done
done
echo >>"$results"
echo "Written $results" >&2
