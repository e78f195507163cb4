#!/usr/bin/env bash
# Two simulated Slurm compute nodes on this machine, chnode1 and chnode2, for scripts/slurm-up.sh
# (which runs `up` after the controller) and scripts/slurm-down.sh (`down`).
#
# A node is what a cluster node looks like to a container runtime, short of its own kernel:
#   - its own network namespace, on a bridge (chslurm0, 10.213.77.1/24) in the machine's,
#     where slurmctld runs: chnode1 is 10.213.77.11, chnode2 10.213.77.12;
#   - its own UTS namespace (hostname) and mount namespace, with private tmpfs on /tmp,
#     /var/tmp, /dev/shm and /run, and its own /etc/hosts naming the nodes and the controller;
#   - its own munged (same key, as every node of a cluster has) and slurmd (-N NAME);
#   - everything else shared, as a cluster's nodes share /home, the images and the software.
# Slurm's state for the nodes (spool, logs, pid files, munge's seed) stays in $SLURM_STATE,
# bound into each node at the same path.
#
# Usage (root):
#   bash scripts/slurm-nodes.sh conf    print the slurm.conf lines for the nodes
#   bash scripts/slurm-nodes.sh up      make the network, the namespaces, start the daemons
#   bash scripts/slurm-nodes.sh down    stop everything in the nodes, remove the network
set -euo pipefail
state=${SLURM_STATE:-/var/tmp/ch-slurm}
nodes=(chnode1 chnode2)
subnet=10.213.77
bridge=chslurm0
ctl_addr=$subnet.1
controller=$(hostname -s)

addr_of() { # index (0-based) -> address
    echo "$subnet.$((11 + $1))"
}
# Whether the pid file names a live process of that name (not a zombie).
running() { # pidfile name
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(ps -o stat=,comm= -p "$pid" | awk '$1 !~ /^Z/ {print $2}')" = "$2" ]
}
netns_of() { echo "chslurm-$1"; }
veth_of() { echo "chsl-$1"; }   # the host's end (at most 15 characters)

conf() {
    local i list
    for i in "${!nodes[@]}"; do
        echo "NodeName=${nodes[$i]} NodeAddr=$(addr_of "$i") CPUs=8 State=UNKNOWN"
    done
    list=$(IFS=,; echo "${nodes[*]}")
    echo "PartitionName=two Nodes=$list MaxTime=INFINITE State=UP OverSubscribe=YES"
}

# The namespace side of a node: runs in its new mount and UTS namespaces (and its network
# namespace), makes them private and starts the node's daemons, which keep them alive.
node_init() { # name dir
    local name=$1 dir=$2
    hostname "$name"
    # $SLURM_STATE may be under a directory made private below: carry it over on a bind
    # parked in the new /run.
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
    mkdir /run/.state
    mount --bind "$state" /run/.state
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
    mkdir -p "$state"
    mount --move /run/.state "$state"
    rmdir /run/.state
    mount --bind "$dir/hosts" /etc/hosts
    mkdir -m 755 /run/munge
    chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file="$dir/munge/munged.pid" \
        --seed-file="$dir/munge/munged.seed" --log-file="$dir/munge/munged.log"
    /usr/sbin/slurmd -N "$name"
}

up() {
    local i name dir
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        if ip -o addr show | grep -q " $subnet\."; then
            echo "slurm-nodes.sh: $subnet.0/24 is in use on this machine" >&2
            exit 1
        fi
        ip link add "$bridge" type bridge
        ip addr add "$ctl_addr/24" dev "$bridge"
        ip link set "$bridge" up
    fi
    for i in "${!nodes[@]}"; do
        name=${nodes[$i]}
        dir=$state/nodes/$name
        running "$state/run/slurmd-$name.pid" slurmd && continue
        down_node "$name"
        mkdir -p "$dir/munge"
        chown munge:munge "$dir/munge"
        chmod 700 "$dir/munge"
        {
            echo "127.0.0.1 localhost"
            echo "$ctl_addr $controller"
            local j
            for j in "${!nodes[@]}"; do echo "$(addr_of "$j") ${nodes[$j]}"; done
        } >"$dir/hosts"
        ip netns add "$(netns_of "$name")"
        ip link add "$(veth_of "$name")" type veth peer name eth0 netns "$(netns_of "$name")"
        ip link set "$(veth_of "$name")" master "$bridge" up
        ip -n "$(netns_of "$name")" addr add "$(addr_of "$i")/24" dev eth0
        ip -n "$(netns_of "$name")" link set eth0 up
        ip -n "$(netns_of "$name")" link set lo up
        nsenter --net="/run/netns/$(netns_of "$name")" \
            unshare --mount --uts --propagation private \
            bash -c "$(declare -f node_init); state='$state'; set -euo pipefail; node_init '$name' '$dir'"
        # slurmd writes its pid file (SlurmdPidFile, shared) once it runs as a daemon.
        for _ in $(seq 100); do running "$state/run/slurmd-$name.pid" slurmd && break; sleep 0.1; done
        running "$state/run/slurmd-$name.pid" slurmd \
            || { echo "slurm-nodes.sh: slurmd of $name did not start; see $state/log/slurmd-$name.log" >&2; exit 1; }
    done
}

# Stops a node: its slurmd, its munged, whatever else still runs in its network namespace
# (steps of a job, say), then removes the namespace; its mount namespace goes with the last
# process in it.
down_node() { # name
    local name=$1 dir=$state/nodes/$1 ns pid pids
    ns=$(netns_of "$name")
    running "$state/run/slurmd-$name.pid" slurmd && kill "$(cat "$state/run/slurmd-$name.pid")"
    running "$dir/munge/munged.pid" munged && kill "$(cat "$dir/munge/munged.pid")"
    if ip netns list | grep -qw "$ns"; then
        for _ in $(seq 50); do
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            [ -z "$pids" ] && break
            sleep 0.1
        done
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
        ip netns del "$ns"
    fi
    ip link del "$(veth_of "$name")" 2>/dev/null || true
    rm -f "$dir/munge/munged.pid" "$state/run/slurmd-$name.pid"
}

down() {
    local name
    for name in "${nodes[@]}"; do down_node "$name"; done
    ip link del "$bridge" 2>/dev/null || true
    # `ip netns add` made /run/netns a mount point of its own; once no namespace is left in
    # it, the machine is as it was.
    if mountpoint -q /run/netns && [ -z "$(ls -A /run/netns)" ]; then
        umount /run/netns && rmdir /run/netns
    fi
}

[ "$(id -u)" -eq 0 ] || { echo "slurm-nodes.sh: must run as root" >&2; exit 1; }
case ${1:-} in
    conf) conf ;;
    up) up ;;
    down) down ;;
    *) echo "usage: bash scripts/slurm-nodes.sh conf|up|down" >&2; exit 64 ;;
esac
