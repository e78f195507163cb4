#!/usr/bin/env bash
# What root must do once on a fresh Debian 12 machine so that the quick start
# (scripts/quickstart.sh) or the test suite (scripts/test.sh) runs. It checks first and
# changes only what is missing: run again, it does nothing; a plain user on a machine set
# up before needs no privilege at all.
#
#   bash scripts/setup.sh demo    what the quick start needs: its packages, /dev/fuse
#                                 usable by every user, unprivileged user namespaces
#   bash scripts/setup.sh tests   (the default) all of demo, and the packages the tests
#                                 need, the unprivileged test users chtest and chtest2, the
#                                 test corpus (testdata/build-corpus.sh), Slurm with this
#                                 machine as a node and two simulated nodes
#                                 (scripts/slurm-up.sh; scripts/slurm-down.sh stops it)
#   bash scripts/setup.sh bench   all of tests, and what bench/ compares with or builds its
#                                 trees by: debootstrap, fio, Charliecloud's ch-run, perf
#
# Not root: it runs itself with sudo where sudo exists; else it says in one line what an
# administrator must do, and exits 1. The changes to /dev/fuse and to sysctls last until
# the next boot (run it again then).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
mode=${1:-tests}

# The Debian packages, in this one place (scripts/slurm-up.sh installs Slurm's own).
# The build: a C compiler for the codec crates (libdeflate, liblzma, lz4, zstd).
# The demo: mksquashfs for demo.sqfs, busybox-static inside it, fusermount3 for a plain
# user's squashfuse-rs mount.
demo_packages=(gcc libc6-dev squashfs-tools busybox-static fuse3)
# The tests: the corpus builders and their tools (testdata/build-corpus.sh), squashfuse
# to compare with, pgrep and python3 for the ch-run tests, siftool to make SIF images
# (tests/sif.rs), man and the shells whose completions tests/install.rs checks.
test_packages=(
    "${demo_packages[@]}" squashfs-tools-ng attr squashfuse xz-utils zstd lz4 lzop
    python3 util-linux procps siftool man-db zsh fish bash-completion
)
# The benchmarks (bench/): debootstrap for their root filesystems, fio, Charliecloud's
# ch-run and squashfuse_ll to compare with, perf for the request and CPU profiles.
bench_packages=("${test_packages[@]}" debootstrap fio charliecloud-runtime linux-perf bc time)
test_users=(chtest chtest2)

case $mode in
    demo) packages=("${demo_packages[@]}") ;;
    tests) packages=("${test_packages[@]}") ;;
    bench) packages=("${bench_packages[@]}") ;;
    *) echo "usage: bash scripts/setup.sh [demo|tests|bench]" >&2; exit 64 ;;
esac
# bench needs everything tests does.
with_tests() { [ "$mode" != demo ]; }

is_root() { [ "$(id -u)" -eq 0 ]; }
say() { echo "setup.sh: $*"; }
joined() { local out="$1"; shift; for x in "$@"; do out+="; $x"; done; echo "$out"; }

missing_packages() {
    local p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || echo "$p"
    done
}

# Who must be able to use FUSE and user namespaces: the caller, or, for root, a plain user
# (the quick start runs ch-run as nobody or the sudo caller, the tests as chtest).
as_plain_user() {
    if is_root; then runuser -u nobody -- "$@"; else "$@"; fi
}
fuse_usable() { as_plain_user sh -c 'exec 3<>/dev/fuse' 2>/dev/null; }
userns_usable() { as_plain_user unshare -Ur true 2>/dev/null; }

corpus_built() { [ -s testdata/out/images.txt ]; }
# Slurm is up with this machine's node and the two simulated ones (partition two).
slurm_up() {
    command -v sinfo >/dev/null &&
        sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)' &&
        [ "$(sinfo -h -N -p two -o '%T' 2>/dev/null | grep -cE '^(idle|mixed|allocated)')" -eq 2 ]
}

# What is missing, as the words an administrator reads.
todo=()
mapfile -t need_packages < <(missing_packages)
[ ${#need_packages[@]} -eq 0 ] || todo+=("install the Debian packages ${need_packages[*]}")
fuse_usable || todo+=("make /dev/fuse usable by every user (mode 0666)")
userns_usable || todo+=("allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)")
if with_tests; then
    for u in "${test_users[@]}"; do
        id "$u" >/dev/null 2>&1 || todo+=("create the user $u")
    done
    corpus_built || todo+=("build the test corpus (testdata/build-corpus.sh)")
    slurm_up || todo+=("start Slurm: this machine as a node and two simulated nodes (scripts/slurm-up.sh)")
fi

if [ ${#todo[@]} -eq 0 ]; then
    # The corpus may be there but out of date: root brings it up to date (quick when it is).
    if with_tests && is_root; then bash testdata/build-corpus.sh >/dev/null; fi
    say "$mode: nothing to do"
    exit 0
fi

if ! is_root; then
    if command -v sudo >/dev/null; then
        say "as root (sudo): $(joined "${todo[@]}")"
        exec sudo bash "$repo/scripts/setup.sh" "$mode"
    fi
    echo "setup.sh: an administrator must first $(joined "${todo[@]}") (or run 'bash scripts/setup.sh $mode' as root)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ ${#need_packages[@]} -gt 0 ]; then
    say "installing ${need_packages[*]}"
    apt-get update -q >/dev/null || { sleep 10; apt-get update -q >/dev/null; }
    apt-get install -y -q --no-install-recommends "${need_packages[@]}" >/dev/null
fi

if ! fuse_usable; then
    say "making /dev/fuse usable by every user"
    modprobe fuse 2>/dev/null || true
    [ -e /dev/fuse ] || mknod /dev/fuse c 10 229
    chmod 0666 /dev/fuse
    fuse_usable || { echo "setup.sh: /dev/fuse is mode 0666 but a plain user still can't open it (a container without the fuse device?)" >&2; exit 1; }
fi

if ! userns_usable; then
    say "allowing unprivileged user namespaces"
    if [ -e /proc/sys/kernel/unprivileged_userns_clone ]; then
        sysctl -q -w kernel.unprivileged_userns_clone=1
    fi
    if [ "$(cat /proc/sys/user/max_user_namespaces)" -eq 0 ]; then
        sysctl -q -w user.max_user_namespaces=15000
    fi
    if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]; then
        sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0
    fi
    userns_usable || { echo "setup.sh: a plain user still can't make a user namespace (unshare -Ur true fails)" >&2; exit 1; }
fi

with_tests || { say "demo: done"; exit 0; }

for u in "${test_users[@]}"; do
    if ! id "$u" >/dev/null 2>&1; then
        say "creating the unprivileged test user $u"
        useradd --create-home --shell /bin/bash "$u"
    fi
done

say "test corpus (testdata/build-corpus.sh; about 3 minutes when it is built)"
bash testdata/build-corpus.sh >/dev/null

slurm_up || bash scripts/slurm-up.sh
say "$mode: done"
