#!/usr/bin/env bash
# Quick start: install what is missing, build everything, make a small demo image from the
# host's busybox, and read it with the tools built here.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

need=()
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

cargo build --release --workspace

demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
chmod 755 "$demo"
root="$demo/root"
mkdir -p "$root"/{bin,etc,dev,proc,sys,tmp,home,mnt}
cp /bin/busybox "$root/bin/busybox"
for cmd in sh ls cat echo uname id; do ln -s busybox "$root/bin/$cmd"; done
printf 'PRETTY_NAME="sqfs demo (busybox)"\nNAME=demo\n' >"$root/etc/os-release"
touch "$root/etc/passwd" "$root/etc/group"
mksquashfs "$root" demo.sqfs -noappend -comp zstd -quiet -no-progress >/dev/null

sqfs=target/release/sqfs
echo "== sqfs info demo.sqfs"; $sqfs info demo.sqfs
echo "== sqfs ls -lR demo.sqfs /etc"; $sqfs ls -lR demo.sqfs /etc

# ch-run, as an ordinary user: mount, run, clean up, one command. As root, run it as the
# user who called sudo, else as nobody (from a copy everyone can read).
cp demo.sqfs target/release/ch-run "$demo/"
chmod 644 "$demo/demo.sqfs"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  as_user=(runuser -u "${SUDO_USER:-nobody}" -- env USER="${SUDO_USER:-nobody}" PATH=/usr/bin:/bin)
fi
echo "== ch-run demo.sqfs -- sh -c '…'"
(cd "$demo" && "${as_user[@]}" ./ch-run demo.sqfs -- sh -c \
  '. /etc/os-release; echo "Hello from $PRETTY_NAME: I am $(id -un) (uid $(id -u)), / is $(cat /proc/self/mounts | while read -r dev mnt type rest; do [ "$mnt" = / ] && echo "$type"; done)"')
echo "== nothing left behind: no mount of demo.sqfs on the host"
! grep -q demo.sqfs /proc/mounts && echo "ok"
