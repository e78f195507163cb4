#!/usr/bin/env bash
# A real Slurm for trying ch-run under srun (and for the tests): installs Debian's slurmctld,
# slurmd, munge and OpenMPI (PMIx), writes slurm.conf, starts munged, slurmctld and slurmd as
# daemons (no systemd needed) and waits until every node is idle. Two partitions:
#   debug (the default)  this machine as one node;
#   two                  chnode1 and chnode2, two nodes simulated on this machine, each in its
#                        own network, UTS and mount namespaces (scripts/slurm-nodes.sh):
#                        `srun -p two -N 2 ...` runs across them.
# SLURM_NODES=0 leaves out the simulated nodes (they need `ip netns`).
# Stop it with scripts/slurm-down.sh.
#
# Usage (root): bash scripts/slurm-up.sh
# State lives in $SLURM_STATE (default /var/tmp/ch-slurm): config, logs, pid files.
set -euo pipefail
state=${SLURM_STATE:-/var/tmp/ch-slurm}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "slurm-up.sh: must run as root" >&2; exit 1; }
with_nodes=1
[ "${SLURM_NODES:-2}" = 0 ] && with_nodes=0

packages=(slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev)
[ $with_nodes = 0 ] || packages+=(iproute2)   # ip netns, for the simulated nodes
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

mkdir -p "$state"/{log,spool/ctld,run}
chmod 755 "$state"
host=$(hostname -s)
cpus=8   # more than the machine's cores (config_overrides), so tests can run -n 8
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm
new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
# The slurmd paths hold %n, the node's name: the simulated nodes' slurmds share this state
# directory with this machine's.
cat >"$new_conf" <<EOF
# Written by ch-run's scripts/slurm-up.sh: this machine as one node, no cgroups.
ClusterName=chtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d-%n
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd-%n.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
EnforcePartLimits=ALL
MpiDefault=pmix
ReturnToService=2
SchedulerType=sched/backfill
KillWait=5
InactiveLimit=0
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
[ $with_nodes = 0 ] || bash "$here/slurm-nodes.sh" conf >>"$new_conf"
# A Slurm that runs with another configuration (other nodes, say) starts again with this one.
if ! cmp -s "$new_conf" "$conf"; then
  bash "$here/slurm-down.sh" >/dev/null
  cp "$new_conf" "$conf"
  chmod 644 "$conf"
fi

# munge: a key, its run directory, the daemon.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge

# Whether the pid file names a live process of that name, not a zombie (a simulated node
# runs daemons of the same names).
running() { # pidfile name
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(ps -o stat=,comm= -p "$pid" | awk '$1 !~ /^Z/ {print $2}')" = "$2" ]
}
running /run/munge/munged.pid munged || runuser -u munge -- /usr/sbin/munged
running "$state/run/slurmctld.pid" slurmctld || /usr/sbin/slurmctld
running "$state/run/slurmd-$host.pid" slurmd || /usr/sbin/slurmd -N "$host"
[ $with_nodes = 0 ] || bash "$here/slurm-nodes.sh" up

nodes=$(sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$conf" | paste -sd, -)
want=$(echo "$nodes" | tr ',' '\n' | wc -l)
for _ in $(seq 120); do
  # Every node registered and idle (or busy): none down, unknown or not responding.
  states=$(sinfo -h -N -n "$nodes" -o '%N %T' 2>/dev/null | sort -u || true)
  if [ "$(echo "$states" | grep -cE ' (idle|mixed|allocated)$')" -eq "$want" ]; then
    echo "slurm is up: $(sinfo -h -N -o '%N (%P) %T %c CPUs' | paste -sd ';' - | sed 's/;/; /g')"
    exit 0
  fi
  # A node that came back from a previous run may be down until resumed.
  scontrol update NodeName="$nodes" State=RESUME >/dev/null 2>&1 || true
  sleep 0.5
done
echo "slurm-up.sh: not every node became idle; see $state/log" >&2
sinfo -N -l >&2 || true
exit 1
