#!/usr/bin/env bash
# Stops what scripts/slurm-up.sh started: the simulated nodes (scripts/slurm-nodes.sh down),
# slurmd and slurmctld (by their pid files), munged.
set -uo pipefail
state=${SLURM_STATE:-/var/tmp/ch-slurm}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$here/slurm-nodes.sh" down
# slurmd-NODE.pid: this machine's slurmd (slurmd.pid before the simulated nodes came).
for pidfile in "$state"/run/slurmd*.pid "$state/run/slurmctld.pid"; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  case $(cat "/proc/$pid/comm" 2>/dev/null) in
    slurmd|slurmctld)
      kill "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null ;;
  esac
  rm -f "$pidfile"
done
pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = munged ]; then
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
echo "slurm stopped"
