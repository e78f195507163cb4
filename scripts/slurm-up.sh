#!/usr/bin/env bash
# A real one-node Slurm for trying ch-run under srun (and for the tests): installs Debian's
# slurmctld, slurmd, munge and OpenMPI (PMIx), writes a one-node slurm.conf, starts munged,
# slurmctld and slurmd as daemons (no systemd needed) and waits until the node is idle.
# Stop it with scripts/slurm-down.sh.
#
# Usage (root): bash scripts/slurm-up.sh
# State lives in $SLURM_STATE (default /var/tmp/ch-slurm): config, logs, pid files.
set -euo pipefail
state=${SLURM_STATE:-/var/tmp/ch-slurm}
[ "$(id -u)" -eq 0 ] || { echo "slurm-up.sh: must run as root" >&2; exit 1; }

packages=(slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

mkdir -p "$state"/{log,spool/ctld,spool/d,run}
chmod 755 "$state"
host=$(hostname -s)
cpus=8   # more than the machine's cores (config_overrides), so tests can run -n 8
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm
cat >"$conf" <<EOF
# Written by ch-run's scripts/slurm-up.sh: one node, no cgroups.
ClusterName=chtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
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

# munge: a key, its run directory, the daemon.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd

for _ in $(seq 120); do
  if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    echo "slurm is up: $(sinfo -h -N -o '%N %T %c CPUs')"
    exit 0
  fi
  # A node that came back from a previous run may be down until resumed.
  scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
  sleep 0.5
done
echo "slurm-up.sh: the node never became idle; see $state/log" >&2
sinfo -N -l >&2 || true
exit 1
