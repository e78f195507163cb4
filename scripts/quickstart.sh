#!/usr/bin/env bash
# Quick start: set up what the demo needs (scripts/setup.sh demo: packages, /dev/fuse, user
# namespaces; through sudo when not root, or one line saying what an administrator must
# allow), build everything, make a small demo image from the host's busybox, and use it
# with the tools built here: sqfs, a squashfuse-rs mount, ch-run as an ordinary user.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/setup.sh demo
if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "quickstart.sh: cargo not found: install Rust (rustup.rs)" >&2; exit 1; }

cargo build --release --workspace

demo=$(mktemp -d)
trap 'fusermount3 -u "$demo/mnt" 2>/dev/null || true; rm -rf "$demo"' EXIT
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

# The rest as an ordinary user: as root, the user who called sudo, else nobody. What that
# user runs and reads is copied where everyone can read it (the clone may be private).
cp demo.sqfs target/release/ch-run target/release/squashfuse-rs "$demo/"
chmod 644 "$demo/demo.sqfs"
mkdir "$demo/mnt"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  user=${SUDO_USER:-nobody}
  chown "$user" "$demo/mnt"
  as_user=(runuser -u "$user" -- env USER="$user" PATH=/usr/bin:/bin)
fi

# squashfuse-rs returns once the mount is ready; as a plain user it mounts through
# fusermount3, which also unmounts it.
echo "== squashfuse-rs demo.sqfs mnt; cat mnt/etc/os-release; fusermount3 -u mnt"
(cd "$demo" && "${as_user[@]}" ./squashfuse-rs demo.sqfs mnt &&
  "${as_user[@]}" cat mnt/etc/os-release &&
  "${as_user[@]}" fusermount3 -u mnt)

# ch-run: mount, run, clean up, in one command.
echo "== ch-run demo.sqfs -- sh -c '…'"
(cd "$demo" && "${as_user[@]}" ./ch-run demo.sqfs -- sh -c \
  '. /etc/os-release; echo "Hello from $PRETTY_NAME: I am $(id -un) (uid $(id -u)), / is $(cat /proc/self/mounts | while read -r dev mnt type rest; do [ "$mnt" = / ] && echo "$type"; done)"')
echo "== nothing left behind: no mount of demo.sqfs on the host"
if grep -q demo.sqfs /proc/mounts; then
  echo "quickstart.sh: a mount of demo.sqfs is left:" >&2
  grep demo.sqfs /proc/mounts >&2
  exit 1
fi
echo "ok"
