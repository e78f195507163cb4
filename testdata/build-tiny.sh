#!/usr/bin/env bash
# Build the tiny, checked-in SquashFS images under testdata/tiny/.
#
#   bash testdata/build-tiny.sh
#
# The output is committed; rerunning the script with the same squashfs-tools
# (4.5.1) and squashfs-tools-ng (1.2.0) versions reproduces it byte for byte.
# Root is NOT needed: devices, fifo, socket, owners and modes come from
# mksquashfs pseudo definitions / a gensquashfs pack file, times are fixed,
# and only user.* xattrs are set on the source files (needs a filesystem with
# user xattrs, e.g. ext4; the scratch tree lives in testdata/out/, which is
# git-ignored).
#
# Images (each < 64 KiB):
#   tiny-gzip.sqfs          gzip, 128 KiB blocks, every inode type, xattrs
#   tiny-gzip-4k.sqfs       same, 4 KiB blocks (multi-block files, holes)
#   tiny-{lzma,lzo,xz,lz4,zstd}.sqfs   same tree and block size as tiny-gzip
#   tiny-uncompressed.sqfs  -noI -noD -noF -noX, 4 KiB blocks
#   tiny-empty.sqfs         empty root directory
#   tiny-offset-8k.sqfs     tiny-gzip's tree at byte offset 8192, junk before
#   tiny-xz-bcj.sqfs        xz, 4 KiB blocks, all six BCJ filters (synthetic code)
#   tiny-gen-xz.sqfs        gensquashfs from a pack file (no xattrs, mtime 0)
# tiny/images.txt is a manifest in the same format as out/images.txt
# (name path offset codec builder notes; path relative to tiny/), and
# tiny/CONTENTS.txt lists each image with unsquashfs -lln.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEST=$HERE/tiny
WORK=$HERE/out/tiny-src
unset SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C
umask 022

for tool in mksquashfs unsquashfs gensquashfs setfattr; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

T=1234567890      # 2009-02-13T23:31:30Z, mtime of every source entry
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/empty" "$DEST"
S=$WORK/src

# ---- source tree (regular files, dirs, symlinks, a hard link, user xattrs) ----
printf 'Hello, SquashFS!\n' > "$S/hello.txt"
: > "$S/empty"
mkdir -p "$S/dir/sub"
printf 'nested\n' > "$S/dir/nested.txt"
printf 'deeper\n' > "$S/dir/sub/deeper.txt"
# 3 full 4 KiB blocks + 100 bytes: multi-block with -b 4K, fragment at 128K
yes 'block pattern 0123456789 abcdefghijklmnopqrstuvwxyz' | head -c 12388 \
    > "$S/blocks.bin" || true
# 300000 bytes: data at 0..5000, hole, data at 290000..300000
yes 'sparse head' | head -c 5000 > "$S/sparse.bin" || true
truncate -s 290000 "$S/sparse.bin"
yes 'sparse tail' | head -c 10000 >> "$S/sparse.bin" || true
printf 'two names, one inode\n' > "$S/hardlink-1"
ln "$S/hardlink-1" "$S/hardlink-2"
ln -s hello.txt "$S/symlink"
ln -s does/not/exist "$S/dangling"
ln -s dir "$S/dir-link"
printf 'setuid\n' > "$S/setuid"
setfattr -n user.greeting -v hello "$S/hello.txt"
setfattr -n user.long -v "$(printf 'x%.0s' {1..300})" "$S/hello.txt"
setfattr -n user.dir -v "on a directory" "$S/dir"
setfattr -n user.greeting -v hello "$S/hardlink-1"      # same key+value again
chmod 0644 "$S"/*.txt "$S"/*.bin "$S/empty" "$S/hardlink-1"
chmod 0755 "$S/dir" "$S/dir/sub"
find "$S" -mindepth 1 -depth -exec touch -h -d "@$T" {} +

# mksquashfs pseudo definitions: special files, and owner+mode of every
# source entry (so the result does not depend on who runs the script)
declare -A OWN=([hello.txt]="0644 1000 1000" [dir]="0755 1001 1002"
                [setuid]="4755 0 0")
{
    echo "fifo I $T 0644 0 0 f"
    echo "socket I $T 0755 0 0 s"
    echo "chr-null C $T 0666 0 0 1 3"
    echo "chr-max C $T 0600 0 0 4095 1048575"
    echo "blk B $T 0660 0 6 8 1"
    echo "empty-dir D $T 0700 1000 1000"
    (cd "$S" && find . -mindepth 1 | sed 's|^\./||' | sort) |
    while read -r p; do
        echo "$p m ${OWN[$p]:-$(stat -c %a "$S/$p") 0 0}"
    done
} > "$WORK/pseudo"

MK=(-noappend -no-progress -quiet -processors 1 -mkfs-time 0
    -root-time "$T" -root-mode 0755 -root-uid 0 -root-gid 0
    -pf "$WORK/pseudo")
rm -f "$DEST"/*.sqfs
manifest=()

mk() {  # name codec [options...]
    local name=$1 codec=$2; shift 2
    mksquashfs "$S" "$DEST/$name.sqfs" "${MK[@]}" -comp "$codec" "$@" >/dev/null
    manifest+=("$name $name.sqfs 0 $codec mksquashfs ${NOTE:-ok}")
}

mk tiny-gzip gzip
mk tiny-gzip-4k gzip -b 4K
NOTE=lzma-kernel-unsupported mk tiny-lzma lzma
for c in lzo xz lz4 zstd; do mk "tiny-$c" "$c"; done
mk tiny-uncompressed gzip -b 4K -noI -noD -noF -noX

mksquashfs "$WORK/empty" "$DEST/tiny-empty.sqfs" -noappend -no-progress -quiet \
    -processors 1 -mkfs-time 0 -root-time "$T" -root-mode 0755 -root-uid 0 \
    -root-gid 0 >/dev/null
manifest+=("tiny-empty tiny-empty.sqfs 0 gzip mksquashfs empty")

mksquashfs "$S" "$DEST/tiny-offset-8k.sqfs" "${MK[@]}" -comp gzip \
    -offset 8192 >/dev/null
yes 'junk before the image' | head -c 8192 > "$WORK/junk" || true
dd if="$WORK/junk" of="$DEST/tiny-offset-8k.sqfs" bs=8192 count=1 \
    conv=notrunc status=none
manifest+=("tiny-offset-8k tiny-offset-8k.sqfs 8192 gzip mksquashfs ok")

# xz with every BCJ filter: 16 KiB of synthetic call-heavy "code" per
# architecture, 4 KiB blocks; mksquashfs keeps per block whichever of
# no filter / x86 / powerpc / ia64 / arm / armthumb / sparc compresses best.
mkdir -p "$WORK/bcj"
for arch in x86 arm armthumb powerpc sparc ia64; do
    python3 "$HERE/make-tree.py" --fake-code "$arch" 16384 "$WORK/bcj/$arch"
done
chmod 0644 "$WORK"/bcj/*
find "$WORK/bcj" -exec touch -d "@$T" {} +
mksquashfs "$WORK/bcj" "$DEST/tiny-xz-bcj.sqfs" -noappend -no-progress -quiet \
    -processors 1 -mkfs-time 0 -root-time "$T" -root-mode 0755 -root-uid 0 \
    -root-gid 0 -force-uid 0 -force-gid 0 -b 4K -comp xz \
    -Xbcj x86,arm,armthumb,powerpc,sparc,ia64 >/dev/null
manifest+=("tiny-xz-bcj tiny-xz-bcj.sqfs 0 xz mksquashfs ok")

# gensquashfs from a pack file: owners/modes from the file, every mtime 0.
# (squashfs-tools-ng 1.2.0 ignores --xattr-file together with --pack-file.)
cat > "$WORK/pack" <<'EOF'
dir /dir 0755 1001 1002
file /dir/nested.txt 0644 0 0 src/dir/nested.txt
file /hello.txt 0644 1000 1000 src/hello.txt
file /blocks.bin 0644 0 0 src/blocks.bin
file /sparse.bin 0644 0 0 src/sparse.bin
file /empty 0644 0 0 src/empty
link /hardlink 0644 0 0 /hello.txt
slink /symlink 0777 0 0 hello.txt
nod /chr-max 0600 0 0 c 4095 1048575
nod /blk 0660 0 6 b 8 1
pipe /fifo 0644 0 0
sock /socket 0755 0 0
EOF
gensquashfs -F "$WORK/pack" -D "$WORK" -c xz -e -j 1 -q -f \
    "$DEST/tiny-gen-xz.sqfs" >/dev/null
manifest+=("tiny-gen-xz tiny-gen-xz.sqfs 0 xz gensquashfs no-mtimes,no-xattrs")

printf '%s\n' "${manifest[@]}" > "$DEST/images.txt"

{
    echo "# unsquashfs 4.5.1 -lln of each image (TZ=UTC). Note: unsquashfs"
    echo "# 4.5.1 prints device 4095:1048575 as -1,255; the image stores it"
    echo "# correctly (rdsquashfs and the kernel show 4095:1048575)."
    while read -r name path off _; do
        echo
        echo "## $name"
        unsquashfs -o "$off" -lln "$DEST/$path" | sed 's/^/  /'
    done < "$DEST/images.txt"
} > "$DEST/CONTENTS.txt"

rm -rf "$WORK"
big=0
for f in "$DEST"/*.sqfs; do
    size=$(stat -c %s "$f")
    printf '%-26s %6d bytes\n' "$(basename "$f")" "$size"
    ((size < 65536)) || { echo "  ^ larger than 64 KiB" >&2; big=1; }
done
exit "$big"
