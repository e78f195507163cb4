#!/usr/bin/env bash
# Stops what scripts/slurm-up.sh started: slurmd, slurmctld (by their pid files), munged.
set -uo pipefail
state=${SLURM_STATE:-/var/tmp/ch-slurm}
for daemon in slurmd slurmctld; do
  pidfile=$state/run/$daemon.pid
  if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$pidfile"
  fi
done
pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
[ -n "$pid" ] && kill "$pid" 2>/dev/null
echo "slurm stopped"
