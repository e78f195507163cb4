#!/usr/bin/env bash
# Decompression speed of sqfs::compress against the codecs' C command-line tools, on the
# same compressed bytes: the data blocks of mksquashfs images of a corpus of real files.
#
#   bench/codecs.sh              # 256 MiB corpus, 5 runs, writes bench/codecs.md
#   SIZE_MIB=64 RUNS=3 bench/codecs.sh
#
# Needs: mksquashfs, python3, xz, zstd, lz4, gzip, lzop. Scratch files go to
# $WORK (default /tmp/sqfs-codec-bench); images are rebuilt only when the corpus changes.
#
# The corpus is ELF files from /usr/bin and /usr/lib/x86_64-linux-gnu (60%) followed by C
# headers and Perl modules from /usr/include and /usr/share/perl (40%), in sorted path
# order, concatenated into one file so that every image holds the same 128 KiB blocks.
# Rust times one thread decoding every block from memory into a 128 KiB buffer (median of
# RUNS passes, plus one untimed pass that checks every byte). The C tools decode the same
# blocks rewrapped in their own container (see sqfs/examples/codec_bench.rs) from the
# page cache to /dev/null, started without a shell: their figure includes process start,
# reading the file and their checksums (xz: CRC32 per block, as in the image; gzip: CRC32;
# zstd, lz4, lzop: none), so it is a slightly pessimistic bound for the C library. Both
# sides are reported by CPU time (the figure to compare on a busy machine) and wall time.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/sqfs-codec-bench}
SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-5}
OUT=${OUT:-$ROOT/bench/codecs.md}
CMDLINE="SIZE_MIB=$SIZE_MIB RUNS=$RUNS bench/codecs.sh"

for tool in mksquashfs python3 xz zstd lz4 gzip lzop; do
    command -v "$tool" >/dev/null || { echo "codecs.sh: $tool is not installed" >&2; exit 1; }
done
mkdir -p "$WORK/tree" "$WORK/img" "$WORK/cli"

# --- corpus --------------------------------------------------------------------------
corpus=$WORK/tree/corpus.bin
elf_bytes=$((SIZE_MIB * 1024 * 1024 * 6 / 10))
text_bytes=$((SIZE_MIB * 1024 * 1024 - elf_bytes))
if [[ ! -f $corpus || $(stat -c %s "$corpus") -ne $((SIZE_MIB * 1024 * 1024)) ]]; then
    echo "building a $SIZE_MIB MiB corpus in $corpus" >&2
    rm -f "$WORK"/img/*.sqfs
    {
        # head closes the pipe once it has enough: that SIGPIPE is expected.
        find /usr/bin /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -size +4k -print0 | sort -z |
            while IFS= read -r -d '' f; do
                [[ $(head -c4 "$f" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] && cat "$f"
            done | head -c "$elf_bytes" || true
        find /usr/include /usr/share/perl -type f \( -name '*.h' -o -name '*.pm' \) -print0 |
            sort -z | xargs -0 cat 2>/dev/null | head -c "$text_bytes" || true
    } >"$corpus"
    if [[ $(stat -c %s "$corpus") -ne $((SIZE_MIB * 1024 * 1024)) ]]; then
        echo "codecs.sh: /usr has too little data for a $SIZE_MIB MiB corpus" >&2
        exit 1
    fi
fi

# --- images: mksquashfs defaults per codec, plus the variants people pick -------------
variants=(
    "gzip|-comp gzip"
    "lzma|-comp lzma"
    "lzo|-comp lzo"
    "xz|-comp xz"
    "xz-bcj-x86|-comp xz -Xbcj x86"
    "lz4|-comp lz4"
    "lz4-hc|-comp lz4 -Xhc"
    "zstd|-comp zstd"
)
images=()
for v in "${variants[@]}"; do
    name=${v%%|*}
    img=$WORK/img/$name.sqfs
    if [[ ! -f $img ]]; then
        echo "mksquashfs ${v#*|}" >&2
        # shellcheck disable=SC2086 # the options are meant to split
        mksquashfs "$WORK/tree" "$img.tmp" -noappend -no-fragments -no-xattrs -quiet \
            -no-progress ${v#*|} >/dev/null
        mv "$img.tmp" "$img"
    fi
    images+=("$img")
done

# --- Rust ------------------------------------------------------------------------------
(cd "$ROOT" && cargo build --release -q -p sqfs --example codec_bench)
rm -f "$WORK"/cli/*
"$ROOT/target/release/examples/codec_bench" --runs "$RUNS" --cli-dir "$WORK/cli" \
    "$corpus" "${images[@]}" | tee "$WORK/rust.tsv"

# --- C tools ---------------------------------------------------------------------------
cli_cmd() {
    case $1 in
        *.xz) echo "xz -d -T1 -c $1" ;;
        *.zst) echo "zstd -d -q -c $1" ;;
        *.gz) echo "gzip -d -c $1" ;;
        *.lz4) echo "lz4 -d -q -c $1" ;;
        *.lzo) echo "lzop -d -c $1" ;;
    esac
}
: >"$WORK/cli.tsv"
for f in "$WORK"/cli/*; do
    cmd=$(cli_cmd "$f")
    # Same output as the corpus, or the comparison means nothing.
    $cmd | cmp -s - "$corpus" || { echo "codecs.sh: '$cmd' does not reproduce the corpus" >&2; exit 1; }
    # One warm-up run, then RUNS timed runs: median wall-clock and median CPU (user + sys).
    python3 - "$RUNS" "$(basename "${f%.*}")" $cmd >>"$WORK/cli.tsv" <<'PY'
import resource, statistics, subprocess, sys, time
runs, name, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
wall, cpu = [], []
for i in range(runs + 1):
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    if i:
        wall.append(t1 - t0)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
print(f"{name}\t{statistics.median(wall):.4f}\t{statistics.median(cpu):.4f}\t{' '.join(cmd)}")
PY
done
cat "$WORK/cli.tsv"

# --- report: rewrite the part of codecs.md between the markers -------------------------
python3 - "$WORK/rust.tsv" "$WORK/cli.tsv" "$OUT" "$CMDLINE" "$SIZE_MIB" "$RUNS" "$WORK" <<'PY'
import csv, os, platform, re, subprocess, sys, time
rust_tsv, cli_tsv, out, cmdline, size_mib, runs, work = sys.argv[1:]
crates = {"gzip": "libdeflater (libdeflate 1.26)", "lzma": "liblzma (xz 5.8, static)",
          "lzo": "own decoder (compress/lzo.rs)", "xz": "liblzma (xz 5.8, static)",
          "lz4": "lz4 (liblz4 1.10)", "zstd": "zstd (libzstd 1.5.7)"}
cli = {}
for name, wall, cpu, cmd in csv.reader(open(cli_tsv), delimiter="\t"):
    cli[name] = (float(wall), float(cpu), cmd.replace(work + "/cli/", ""))
def first_line(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[0].strip(" *").replace(", by Yann Collet", "") if lines else "?"
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = []
for r in csv.DictReader(open(rust_tsv), delimiter="\t"):
    name = os.path.splitext(os.path.basename(r["image"]))[0]
    size = int(r["uncompressed"])
    mb = lambda s: size / s / 1e6
    rust_wall, rust_cpu = mb(float(r["wall_s"])), mb(float(r["cpu_s"]))
    if name in cli:
        c_wall, c_cpu, cmd = cli[name]
        c = f"{mb(c_cpu):.0f} | {mb(c_wall):.0f} | `{cmd}` | {rust_cpu / mb(c_cpu):.2f}"
    else:
        c = "— | — | no tool reads concatenated .lzma | —"
    filters = f" ({r['xz_filters'].replace(',', ', ')})" if r["xz_filters"] != "-" else ""
    rows.append(f"| {name}{filters} | {int(r['compressed']) / size:.3f} | {crates[r['codec']]} "
                f"| {rust_cpu:.0f} | {rust_wall:.0f} | {c} |")
body = f"""<!-- codecs.sh begin: everything up to the end marker is rewritten by bench/codecs.sh -->
Produced by `{cmdline}` on {time.strftime('%Y-%m-%d')} (the script's comments describe the method).

- Corpus: {size_mib} MiB of this machine's /usr (60% ELF x86-64 binaries, 40% C headers and
  Perl modules); one mksquashfs image per row (128 KiB blocks, `-no-fragments`, the codec's
  default options unless the row name says otherwise; xz rows list how many blocks
  mksquashfs left unfiltered or gave each BCJ filter).
- MB/s = decompressed bytes (10^6) per second on one thread, median of {runs} runs, by CPU
  time (on-CPU time of the decoding thread; user + sys of the C tool) and by wall-clock time.
  The CPU figure is the one to compare: this 2-core machine is shared, and wall-clock
  figures move with whatever else runs. Rust / C is the ratio of the CPU figures.
- Rust: `sqfs::compress` decoding every block from memory into a 128 KiB buffer. C: the tool
  decoding the same compressed blocks, rewrapped in its own container, from the page cache
  to /dev/null (so it also pays process start, read/write calls and its checksums).
- Machine: {cpu_model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}.
  Tools: {first_line('xz --version')}; {first_line('zstd --version')}; {first_line('lz4 --version')};
  {first_line('gzip --version')}; {first_line("lzop --version 2>&1 | head -2 | paste -sd ' '")}.

| image | ratio | Rust decoder | Rust MB/s (CPU) | Rust MB/s (wall) | C MB/s (CPU) | C MB/s (wall) | C command | Rust / C |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n<!-- codecs.sh end -->"
old = open(out).read() if os.path.exists(out) else "# Codec decompression speed\n\n<!-- codecs.sh begin -->\n<!-- codecs.sh end -->\n"
new, n = re.subn(r"<!-- codecs.sh begin.*?<!-- codecs.sh end -->", lambda _: body, old, flags=re.S)
if n != 1:
    new = old.rstrip("\n") + "\n\n" + body + "\n"
open(out, "w").write(new)
PY
echo "wrote $OUT" >&2
