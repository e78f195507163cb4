#!/usr/bin/env python3
"""Per-block look at zstd's settings for `sqfs pack`'s default, on a tree.

The tree's regular files are concatenated in path order and cut into 128 KiB blocks (big
files are their own blocks; small files share fragment blocks much like this). Each block
is compressed at level 1 (the probe `sqfs pack` runs anyway), at the default's tuned level
15 (searchLog 3, targetLength 24), at level 15 and at level 9; then, for thresholds T, the
bytes and CPU seconds that level 9 for the blocks level 1 shrinks below T would change.
One thread, times from perf_counter around each call: shares, not wall times.

Usage: python3 bench/zstd-blocks.py DIR [MKSQUASHFS_IMAGE_BYTES]
Needs python-zstandard (pip install zstandard; 0.25 bundles libzstd 1.5.7, as sqfs does).
"""
import os
import sys
import time

import zstandard as z

BS = 128 << 10


def params(level, **kw):
    return z.ZstdCompressionParameters.from_level(
        level, source_size=BS, write_content_size=1, write_checksum=0, **kw)


CODECS = {
    'tuned': params(15, search_log=3, target_length=24),
    'l15': params(15),
    'l9': params(9),
    'l1': params(1),
}


def blocks(root):
    paths = []
    for d, ds, fs in os.walk(root):
        ds.sort()
        for f in sorted(fs):
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                paths.append(p)
    buf = bytearray()
    for p in paths:
        try:
            with open(p, 'rb') as f:
                buf += f.read()
        except OSError:
            continue
        while len(buf) >= BS:
            yield bytes(buf[:BS])
            del buf[:BS]
    if buf:
        yield bytes(buf)


def main():
    root = sys.argv[1]
    mk = int(sys.argv[2]) if len(sys.argv) > 2 else None
    cc = {k: z.ZstdCompressor(compression_params=p) for k, p in CODECS.items()}
    rows = []
    for b in blocks(root):
        row = {}
        for k, c in cc.items():
            t0 = time.perf_counter()
            out = c.compress(b)
            row[k] = (min(len(out), len(b)), time.perf_counter() - t0, len(b))
        rows.append(row)
    size = {k: sum(r[k][0] for r in rows) for k in cc}
    cpu = {k: sum(r[k][1] for r in rows) for k in cc}
    print(f"{root}: {len(rows)} blocks")
    for k in cc:
        print(f"  {k:6s} {size[k]:12d} bytes ({size[k] / size['tuned']:.4f}), "
              f"{cpu[k]:7.2f} s ({cpu[k] / cpu['tuned']:.3f})")
    if mk:
        print(f"  mksquashfs's image {mk} bytes; 1% over it is "
              f"{int(1.01 * mk) - size['tuned']} bytes more than the tuned blocks")
    print("  level 9 for blocks that level 1 shrinks below T:")
    for t in (0.10, 0.15, 0.20, 0.25, 0.30):
        ds = dt = 0.0
        for r in rows:
            if r['l1'][0] < t * r['l1'][2]:
                ds += r['l9'][0] - r['tuned'][0]
                dt += r['tuned'][1] - r['l9'][1]
        print(f"    T={t:.2f}: {ds:+10.0f} bytes ({ds / size['tuned']:+.3%}), "
              f"{dt:6.2f} s less ({dt / cpu['tuned']:.1%} of the tuned blocks' CPU)")


if __name__ == '__main__':
    main()
