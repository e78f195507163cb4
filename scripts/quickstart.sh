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
mkdir -p "$demo/root/bin" "$demo/root/etc"
cp /bin/busybox "$demo/root/bin/busybox"
for cmd in sh ls cat echo uname; do ln -s busybox "$demo/root/bin/$cmd"; done
printf 'PRETTY_NAME="sqfs demo (busybox)"\nNAME=demo\n' >"$demo/root/etc/os-release"
mksquashfs "$demo/root" demo.sqfs -noappend -comp zstd -quiet -no-progress >/dev/null

sqfs=target/release/sqfs
echo "== sqfs info demo.sqfs"; $sqfs info demo.sqfs
echo "== sqfs ls -lR demo.sqfs"; $sqfs ls -lR demo.sqfs
echo "== sqfs cat demo.sqfs /etc/os-release"; $sqfs cat demo.sqfs /etc/os-release
$sqfs extract demo.sqfs "$demo/out"
echo "== extracted busybox runs:"; "$demo/out/bin/busybox" echo "hello from inside demo.sqfs"

# The same image through FUSE: squashfuse-rs returns once the mount is ready.
mkdir -p "$demo/mnt"
if target/release/squashfuse-rs demo.sqfs "$demo/mnt"; then
  echo "== squashfuse-rs demo.sqfs: busybox runs from the mount:"
  "$demo/mnt/bin/busybox" sh -c '. /dev/stdin; echo "$PRETTY_NAME, mounted by squashfuse-rs"' <"$demo/mnt/etc/os-release"
  umount "$demo/mnt" 2>/dev/null || fusermount3 -u "$demo/mnt"
else
  echo "(no FUSE here: /dev/fuse must be usable to mount with squashfuse-rs)"
fi
