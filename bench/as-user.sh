# Timing commands run as the benchmark's plain user ($user), sourced by chrun.sh and
# efficiency.sh. Everything is timed inside one shell of that user (bash's $EPOCHREALTIME),
# so runuser's own cost (PAM, setuid) is not counted.

as_user() { runuser -u "$user" -- env USER="$user" HOME=/tmp PATH=/usr/bin:/bin "$@"; }

# Seconds for N sequential runs of "$@" (stdout to /dev/null); fails if one run fails.
seq_time() { local n=$1; shift
  as_user bash -c 'n=$1; shift; t0=$EPOCHREALTIME
    for ((i = 0; i < n; i++)); do "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }; done
    t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc -l' _ "$n" "$@"
}

# Seconds of wall time for N runs of "$@" started at once; fails if one run fails.
par_time() { local n=$1; shift
  as_user bash -c 'n=$1; shift; pids=(); t0=$EPOCHREALTIME
    for ((i = 0; i < n; i++)); do "$@" >/dev/null & pids+=($!); done
    bad=0; for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
    t1=$EPOCHREALTIME; [ "$bad" = 0 ] || { echo "$bad of $n failed: $*" >&2; exit 1; }
    echo "$t1 - $t0" | bc -l' _ "$n" "$@"
}
