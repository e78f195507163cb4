#!/usr/bin/env bash
# Build the SquashFS test corpus.
#
#   bash testdata/build-corpus.sh [OUT_DIR]      (default: testdata/out)
#
# Must run as root (the source tree has device nodes, >2048 owners and
# trusted.*/security.* xattrs; the kernel mount check needs loop devices).
# Needs squashfs-tools (mksquashfs/unsquashfs 4.5.1), squashfs-tools-ng
# (gensquashfs), python3, attr, util-linux.
#
# Idempotent: if OUT_DIR/.stamp matches the hash of this script, make-tree.py,
# the tool versions and OUT_DIR, nothing is rebuilt.  FORCE=1 rebuilds.
#
# Output (OUT_DIR):
#   tree/        the generated source tree (see make-tree.py)
#   *.sqfs       the images
#   images.txt   manifest, one line per image:
#                  name path offset codec builder notes
#                path is absolute; notes is "ok" or a comma-separated list
#                of tags (see testdata/README.md)
#   check.txt    unsquashfs / kernel-mount results per image
#   build.log    build time and size per image
#
# Environment knobs:
#   FORCE=1                rebuild even if the stamp matches
#   CORPUS_PROCESSORS=N    mksquashfs -processors / gensquashfs -j (default 2)
#   CORPUS_JOBS=N          images built concurrently (default 2)
#   CORPUS_MOUNT_CHECK=0   skip the kernel loop-mount check
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/out}
mkdir -p "$OUT"
# Physical path: a checkout whose out/ is a symlink shares that corpus and its stamp.
OUT=$(cd "$OUT" && pwd -P)
PROCS=${CORPUS_PROCESSORS:-2}
JOBS=${CORPUS_JOBS:-2}
MOUNT_CHECK=${CORPUS_MOUNT_CHECK:-1}

# Reproducibility: mksquashfs clamps file times to SOURCE_DATE_EPOCH.
unset SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C

die() { echo "build-corpus.sh: $*" >&2; exit 1; }

for tool in mksquashfs unsquashfs gensquashfs python3 sha256sum flock; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# One build per OUT_DIR at a time; a second caller waits, then finds the
# stamp up to date.
exec 9>"$OUT/.lock"
if ! flock -n 9; then
    echo "build-corpus.sh: waiting for another build in $OUT"
    flock 9
fi

STAMP=$(
    {
        cat "$HERE/build-corpus.sh" "$HERE/make-tree.py"
        mksquashfs -version 2>&1 | head -n1
        gensquashfs --version 2>&1 | head -n1
        echo "$OUT"
    } | sha256sum | cut -d' ' -f1
)
up_to_date() {
    [[ -z "${FORCE:-}" && -f "$OUT/.stamp" && -f "$OUT/images.txt" ]] &&
        [[ "$(cat "$OUT/.stamp")" == "$STAMP" ]] || return 1
    local name path _
    while read -r name path _; do
        [[ -f $path ]] || return 1
    done < "$OUT/images.txt"
}
if up_to_date; then
    echo "build-corpus.sh: corpus in $OUT is up to date (FORCE=1 to rebuild)"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root"

T0=$(date +%s)
TREE=$OUT/tree
EMPTY=$OUT/empty-src
MNT=$OUT/mnt
JUNK=$OUT/junk-1MiB
OFFSET=1048576

# A mount from an interrupted earlier run would make rm -rf descend into it.
if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT"; fi
rm -f "$OUT/.stamp" "$OUT/images.txt" "$OUT/check.txt" "$OUT/build.log" \
      "$OUT"/*.sqfs "$OUT"/*.sqfs.tmp "$JUNK"
rm -rf "$TREE" "$EMPTY"

echo "build-corpus.sh: generating source tree in $TREE"
python3 "$HERE/make-tree.py" "$TREE"
mkdir -p "$EMPTY" "$MNT"
touch -d @1600000000 "$EMPTY"
# deterministic junk to put in front of the offset images
yes 'junk before the squashfs image' | head -c "$OFFSET" > "$JUNK" || true
[[ $(stat -c %s "$JUNK") -eq $OFFSET ]] || die "could not write $JUNK"
echo "build-corpus.sh: tree done in $(( $(date +%s) - T0 ))s"

# ---- image table --------------------------------------------------------------
# mk/gen NAME CODEC NOTES [builder options...]
# NOTES is "ok" or comma-separated tags (see testdata/README.md).  Images whose
# NOTES contain "empty" are built from an empty directory.
NAMES=()
declare -A IMG_OFF IMG_CODEC IMG_BUILDER IMG_NOTE IMG_ARGS
add() {
    local builder=$1 name=$2 codec=$3 note=$4; shift 4
    NAMES+=("$name")
    IMG_BUILDER[$name]=$builder IMG_CODEC[$name]=$codec IMG_NOTE[$name]=$note
    IMG_OFF[$name]=0
    IMG_ARGS[$name]=""
    (($# == 0)) || IMG_ARGS[$name]=$(printf '%q ' "$@")
}
mk()  { add mksquashfs "$@"; }
gen() { add gensquashfs "$@"; }
# gensquashfs: keep times, keep xattrs, write an NFS export table.  -k does
# not apply to the root directory (1.2.0 gives it mtime 0): set it explicitly.
KXE=(-k -x -e -d mtime=1600000000)
L=lzma-kernel-unsupported

# ---- mksquashfs 4.5.1 ------------------------------------------------------------
mk m-gzip   gzip ok
mk m-lzma   lzma $L
mk m-lzo    lzo  ok
mk m-xz     xz   ok
mk m-lz4    lz4  ok
mk m-lz4hc  lz4  ok -Xhc
mk m-zstd   zstd ok
# xz BCJ filters: 4.5.1 knows x86 arm armthumb powerpc sparc ia64 (no arm64,
# no riscv).  -Xbcj F compresses each block without and with F, keeps the best.
for f in x86 arm armthumb powerpc sparc ia64; do
    mk "m-xz-bcj-$f" xz ok -Xbcj "$f"
done
# block sizes (128K is the default)
mk m-gzip-4k   gzip ok -b 4K
mk m-gzip-1m   gzip ok -b 1M
mk m-zstd-4k   zstd ok -b 4K
mk m-zstd-1m   zstd ok -b 1M
mk m-xz-1m     xz   ok -b 1M
mk m-lz4-4k    lz4  ok -b 4K
# uncompressed tables / data (-noId is implied by -noI)
mk m-uncompressed gzip ok -noI -noD -noF -noX -noId
mk m-noI          gzip ok -noI
mk m-noD          gzip ok -noD
mk m-noF          gzip ok -noF
mk m-noX          gzip ok -noX
mk m-noId         gzip ok -noId
# fragments, duplicates, optional tables
mk m-no-fragments         gzip ok -no-fragments
mk m-always-use-fragments gzip ok -always-use-fragments
mk m-tailends             gzip ok -tailends
mk m-no-duplicates        gzip ok -no-duplicates
mk m-no-xattrs            gzip no-xattrs -no-xattrs
mk m-no-exports           gzip ok -no-exports
mk m-no-hardlinks         gzip no-hardlinks -no-hardlinks
mk m-no-sparse            zstd ok -no-sparse -Xcompression-level 3
# not padded to 4 KiB: a loop device drops the partial last sector
mk m-nopad                gzip nopad-kernel-unmountable -nopad
# compressor options stored in the image
mk m-gzip-opts gzip ok -Xcompression-level 1 -Xwindow-size 10 \
    -Xstrategy default,filtered
mk m-xz-dict   xz   ok -Xdict-size 25%
mk m-zstd-l3   zstd ok -Xcompression-level 3
mk m-lzo-1x1   lzo  ok -Xalgorithm lzo1x_1
# empty root directory
mk m-empty    gzip empty
mk m-empty-xz xz   empty
# the filesystem starts 1 MiB into the file, after junk
mk m-offset-1m gzip ok
IMG_OFF[m-offset-1m]=$OFFSET

# ---- gensquashfs (squashfs-tools-ng 1.2.0) ------------------------------------------
gen g-gzip  gzip ok "${KXE[@]}"
gen g-lzma  lzma $L "${KXE[@]}"
gen g-lzo   lzo  ok "${KXE[@]}"
gen g-xz    xz   ok "${KXE[@]}"
gen g-lz4   lz4  ok "${KXE[@]}"
gen g-lz4hc lz4  ok "${KXE[@]}" -X hc
gen g-zstd  zstd ok "${KXE[@]}"
# --help lists x86 powerpc ia64 arm armthumb (sparc is accepted as well);
# two of them here to keep the build time down, mksquashfs covers all six
gen g-xz-bcj-x86 xz ok "${KXE[@]}" -X x86
gen g-xz-bcj-arm xz ok "${KXE[@]}" -X arm
gen g-gzip-4k gzip ok "${KXE[@]}" -b 4096
gen g-zstd-1m zstd ok "${KXE[@]}" -b 1048576
gen g-no-tail-packing gzip ok "${KXE[@]}" -T
gen g-no-xattrs    gzip no-xattrs -k -e -d mtime=1600000000
gen g-no-exports   gzip ok        -k -x -d mtime=1600000000
gen g-no-keep-time gzip no-mtimes -x -e        # every mtime is 0
gen g-gzip-opts gzip ok "${KXE[@]}" -X level=1,window=10,default,filtered
# dictsize=NN% is rejected by 1.2.0 despite --help: use an absolute size
gen g-xz-opts   xz   ok "${KXE[@]}" -X dictsize=32K,x86
# lzma stores no options in the superblock area, but lc/lp/pb change the
# properties byte of every lzma stream
gen g-lzma-opts lzma $L "${KXE[@]}" -X dictsize=64K,level=1,lc=2,lp=2,pb=0
gen g-zstd-l1   zstd ok "${KXE[@]}" -X level=1
gen g-empty     gzip empty "${KXE[@]}"
# no offset option in gensquashfs: the junk is prepended
gen g-offset-1m gzip ok "${KXE[@]}"
IMG_OFF[g-offset-1m]=$OFFSET

# ---- build, JOBS images at a time -------------------------------------------------
now() { echo "${EPOCHREALTIME/[.,]/}"; }          # microseconds

# Whether unsquashfs extracts every file of an image without an error.
verify_extracts() {
    local dir
    dir=$(mktemp -d)
    unsquashfs -no-progress -quiet -d "$dir/x" "$1" >/dev/null 2>&1
    local rc=$?
    rm -rf "$dir"
    return $rc
}

build_one() {
    local name=$1 src=$TREE t0 us
    local img=$OUT/$name.sqfs off=${IMG_OFF[$name]} codec=${IMG_CODEC[$name]}
    local log=$LOGDIR/$name.log
    eval "local -a args=(${IMG_ARGS[$name]})"
    [[ ${IMG_NOTE[$name]} != *empty* ]] || src=$EMPTY
    t0=$(now)
    case ${IMG_BUILDER[$name]} in
    mksquashfs)
        ((off == 0)) || args+=(-offset "$off")
        mksquashfs "$src" "$img" -noappend -no-progress -quiet \
            -processors "$PROCS" -mkfs-time 0 -comp "$codec" "${args[@]}" \
            >"$log" 2>&1
        # mksquashfs 4.5.1 with -tailends / -always-use-fragments now and then writes a
        # fragment that neither the kernel nor unsquashfs can decompress (seen here about
        # one build in three, with any -processors): keep only an image that extracts.
        if [[ " ${args[*]} " == *" -tailends "* || " ${args[*]} " == *" -always-use-fragments "* ]]; then
            local try
            for try in 1 2 3 4 5 6 7 8; do
                verify_extracts "$img" && break
                echo "build-corpus.sh: $name: mksquashfs wrote a corrupt image, rebuilding ($try)" >&2
                mksquashfs "$src" "$img" -noappend -no-progress -quiet \
                    -processors "$PROCS" -mkfs-time 0 -comp "$codec" "${args[@]}" \
                    >"$log" 2>&1
            done
            verify_extracts "$img" || { echo "build-corpus.sh: $name: no valid image in 9 builds" >&2; return 1; }
        fi
        # mksquashfs leaves zeros in front of the offset: put junk there
        ((off == 0)) || dd if="$JUNK" of="$img" bs="$off" count=1 \
            conv=notrunc status=none
        ;;
    gensquashfs)
        local dst=$img
        ((off == 0)) || dst=$img.tmp
        gensquashfs -D "$src" -c "$codec" -j "$PROCS" -q -f "${args[@]}" \
            "$dst" >"$log" 2>&1
        if ((off != 0)); then cat "$JUNK" "$dst" > "$img"; rm -f "$dst"; fi
        ;;
    esac
    us=$(( $(now) - t0 ))
    # second line of "times": user and system time of this job's children
    times > "$LOGDIR/$name.cpu"
    printf '%-26s %11d bytes %4d.%02ds wall, cpu %s\n' "$name" \
        "$(stat -c %s "$img")" $((us / 1000000)) $((us % 1000000 / 10000)) \
        "$(tail -n1 "$LOGDIR/$name.cpu")" > "$LOGDIR/$name.time"
}

LOGDIR=$OUT/logs
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
# start the slow xz/lzma images first so the job pool stays busy
ORDER=()
for name in "${NAMES[@]}"; do
    [[ ${IMG_CODEC[$name]} == xz || ${IMG_CODEC[$name]} == lzma ]] && ORDER+=("$name")
done
for name in "${NAMES[@]}"; do
    [[ ${IMG_CODEC[$name]} == xz || ${IMG_CODEC[$name]} == lzma ]] || ORDER+=("$name")
done
fail=0
for name in "${ORDER[@]}"; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || fail=1; done
    ((fail == 0)) || break    # stop starting jobs after a failure
    build_one "$name" &
done
wait
for name in "${NAMES[@]}"; do
    if [[ ! -f $LOGDIR/$name.time ]]; then
        cat "$LOGDIR/$name.log" >&2
        die "building $name failed, see $LOGDIR/$name.log"
    fi
    cat "$LOGDIR/$name.time"
done | tee "$OUT/build.log"

T_BUILD=$(( $(date +%s) - T0 ))
echo "build-corpus.sh: ${#NAMES[@]} images built in ${T_BUILD}s, checking"

# ---- checks -----------------------------------------------------------------
# Expected entry count (root included) for non-empty images.
TREE_ENTRIES=$(find "$TREE" -printf . | wc -c)
can_mount=0
if [[ $MOUNT_CHECK == 1 ]]; then
    modprobe -q loop 2>/dev/null || true
    modprobe -q squashfs 2>/dev/null || true
    if [[ -e /dev/loop-control ]] && grep -qw squashfs /proc/filesystems &&
       command -v mount >/dev/null; then
        can_mount=1
    fi
fi
[[ $can_mount == 1 ]] || echo "build-corpus.sh: kernel mount check skipped"

ref_lines=""
problems=0
{
    echo "# name unsquashfs-s unsquashfs-lln(lines) kernel-mount(entries)"
    echo "# tree entries: $TREE_ENTRIES"
} > "$OUT/check.txt"
for name in "${NAMES[@]}"; do
    img=$OUT/$name.sqfs off=${IMG_OFF[$name]} note=${IMG_NOTE[$name]}
    tags=()
    [[ $note == ok ]] || tags=("$note")

    s_res=ok
    unsquashfs -o "$off" -s "$img" >/dev/null 2>&1 || s_res=FAIL
    l_res=FAIL lines=0
    if out=$(unsquashfs -o "$off" -lln "$img" 2>/dev/null); then
        lines=$(printf '%s\n' "$out" | wc -l)
        l_res="ok($lines)"
    fi
    if [[ $s_res == FAIL || $l_res == FAIL ]]; then
        tags+=(unsquashfs-broken)
    elif [[ $note != *empty* ]]; then
        # every non-empty image lists the same entries as the first one
        [[ -n $ref_lines ]] || ref_lines=$lines
        if [[ $lines != "$ref_lines" ]]; then
            l_res="MISMATCH($lines!=$ref_lines)"; problems=$((problems + 1))
        fi
    fi

    m_res=skipped
    if [[ $can_mount == 1 ]]; then
        if mount -t squashfs -o "ro,loop,offset=$off" "$img" "$MNT" 2>/dev/null
        then
            n=$(find "$MNT" -printf . | wc -c)
            umount "$MNT"
            m_res="ok($n)"
            want=$TREE_ENTRIES
            [[ $note != *empty* ]] || want=1
            if [[ $n != "$want" ]]; then
                m_res="MISMATCH($n!=$want)"; problems=$((problems + 1))
            fi
        else
            m_res=FAIL
            # lzma-kernel-unsupported, nopad-kernel-unmountable
            if [[ $note != *kernel-un* ]]; then
                tags+=(kernel-mount-failed); problems=$((problems + 1))
            fi
        fi
    fi
    echo "$name $s_res $l_res $m_res" >> "$OUT/check.txt"
    if ((${#tags[@]})); then
        IMG_NOTE[$name]=$(IFS=,; echo "${tags[*]}")
    fi
done
rmdir "$MNT" 2>/dev/null || true

for name in "${NAMES[@]}"; do
    echo "$name $OUT/$name.sqfs ${IMG_OFF[$name]} ${IMG_CODEC[$name]}" \
         "${IMG_BUILDER[$name]} ${IMG_NOTE[$name]}"
done > "$OUT/images.txt"

echo "$STAMP" > "$OUT/.stamp"
echo "build-corpus.sh: done in $(( $(date +%s) - T0 ))s" \
     "(build ${T_BUILD}s); ${#NAMES[@]} images, manifest $OUT/images.txt"
grep -E 'FAIL|MISMATCH' "$OUT/check.txt" | sed 's/^/  check: /' || true
if ((problems)); then
    echo "build-corpus.sh: $problems unexpected check result(s), see $OUT/check.txt" >&2
fi
