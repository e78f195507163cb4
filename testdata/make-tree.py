#!/usr/bin/env python3
"""Generate the source tree for the SquashFS test corpus.

Usage: make-tree.py DEST

DEST must not exist (the caller removes an old tree first).  Must run as
root: it creates device nodes, chowns files to >2048 distinct ids and sets
trusted.* / security.* xattrs.

Everything is deterministic (seeded PRNG, fixed timestamps) except the ELF
binaries under bin/, which are copied from the host's /usr/bin.

Layout (see testdata/README.md for the full description):
  files/    regular files of edge sizes (0, 1, 4095 ... 1 MiB+1)
  data/     a few MiB of mixed, random, text and zero data
  bin/      real ELF executables copied from /usr/bin (BCJ filter tests)
  sparse/   sparse files incl. a 4.5 GiB one with data past 4 GiB
  dups/     identical contents under different names
  hardlinks/, other/   hard links (3 names to one inode, cross-dir link)
  names/    255-byte names, odd characters, non-UTF-8 bytes
  bigdir/   3000 entries
  deep/     40 nested directories
  ids/      2100 files, each with its own uid and gid
  modes/    setuid/setgid/sticky/000 and friends
  times/    mtime 0, 2^31-1, 2^31, 2^32-1 on files, dirs and a symlink
  xattrs/   user./trusted./security. xattrs, long and shared values
  links/    symlinks: short, absolute, relative, dangling, 4095-byte target
  dev/      char/block devices (up to 4095:1048575), fifo, socket
"""

import os
import random
import shutil
import socket
import stat
import sys

FIXED_MTIME = 1_600_000_000  # 2020-09-13T12:26:40Z, used for everything else
KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

WORDS = (
    b"the of and to in is squashfs inode block fragment directory table "
    b"metadata compressed xattr symlink device socket fifo uid gid mode "
    b"superblock lookup export id sparse hole tail end data read only "
    b"filesystem kernel mount loop offset checksum header index entry name"
).split()

# path (bytes, relative to DEST) -> mtime override
MTIME_OVERRIDES = {}


def rng(seed):
    return random.Random(seed)


def text_bytes(r, n):
    out = bytearray()
    while len(out) < n:
        w = WORDS[r.randrange(len(WORDS))]
        out += w
        x = r.randrange(16)
        out += b"\n" if x == 0 else (b", " if x == 1 else b" ")
    return bytes(out[:n])


def mixed_bytes(seed, n):
    """Chunks of varied compressibility: random, text, zeros, patterns."""
    r = rng(seed)
    out = bytearray()
    while len(out) < n:
        kind = r.randrange(6)
        ln = r.randrange(512, 64 * KIB)
        if kind == 0:
            chunk = r.randbytes(ln)
        elif kind == 1:
            chunk = text_bytes(r, ln)
        elif kind == 2:
            chunk = bytes(ln)
        elif kind == 3:
            pat = r.randbytes(r.randrange(1, 17))
            chunk = (pat * (ln // len(pat) + 1))[:ln]
        elif kind == 4:
            chunk = bytes(i & 0xFF for i in range(ln))
        else:  # low entropy: random bytes from a 4-symbol alphabet
            alpha = r.randbytes(4)
            chunk = bytes(alpha[b & 3] for b in r.randbytes(ln))
        out += chunk
    return bytes(out[:n])


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def sparse(path, size, extents):
    """Create a sparse file: extents = [(offset, bytes)], then truncate."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for off, data in extents:
            os.pwrite(fd, data, off)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def mkdirs(*paths):
    for p in paths:
        os.makedirs(p, exist_ok=True)


def make_files(root):
    d = os.path.join(root, "files")
    mkdirs(d)
    sizes = [0, 1, 4095, 4096, 4097, 131071, 131072, 131073,
             MIB - 1, MIB, MIB + 1]
    for i, n in enumerate(sizes):
        write(os.path.join(d, "size-%d" % n), mixed_bytes(1000 + i, n))
    # same edge sizes, incompressible, for the block-size boundaries
    for i, n in enumerate([4095, 4096, 4097, 131071, 131072, 131073]):
        write(os.path.join(d, "random-%d" % n), rng(2000 + i).randbytes(n))


def make_data(root):
    d = os.path.join(root, "data")
    mkdirs(d)
    write(os.path.join(d, "mixed-3MiB+12345"), mixed_bytes(3000, 3 * MIB + 12345))
    write(os.path.join(d, "random-256KiB+1"), rng(3001).randbytes(256 * KIB + 1))
    write(os.path.join(d, "text-512KiB"), text_bytes(rng(3002), 512 * KIB))
    # written (not sparse on disk) zeros: squashfs still stores them as holes
    write(os.path.join(d, "zeros-1MiB"), bytes(MIB))
    write(os.path.join(d, "pattern-300000"), (b"0123456789abcdef" * 18750))


def make_bin(root):
    d = os.path.join(root, "bin")
    mkdirs(d)
    total = 0
    for name in ["busybox", "ls", "tar", "bash", "cp", "cat", "mksquashfs"]:
        src = os.path.join("/usr/bin", name)
        if not os.path.isfile(src):
            continue
        with open(src, "rb") as f:
            data = f.read()
        if data[:4] != b"\x7fELF":
            continue
        write(os.path.join(d, name), data, 0o755)
        total += len(data)
        if total >= 2 * MIB:
            break
    if total == 0:
        sys.exit("make-tree.py: no ELF binaries found in /usr/bin")
    # The host only has x86 binaries, so without these the other BCJ filters
    # would never win for any block and their decoders would go untested.
    for arch in ["arm", "armthumb", "powerpc", "sparc", "ia64"]:
        write(os.path.join(d, "fake-%s-code" % arch), fake_code(arch, 160 * KIB),
              0o755)


def fake_code(arch, size):
    """Code-like data full of calls/branches for one BCJ filter.

    Calls go to a few absolute targets but are stored pc-relative, as in real
    code.  The BCJ encoder turns them back into absolute addresses, which
    makes the filtered data compress much better, so mksquashfs/gensquashfs
    pick the filter for these blocks.
    """
    r = rng("fake-" + arch)
    targets = [r.randrange(0, size) & ~15 for _ in range(8)]
    unit = {"ia64": 16, "x86": 8}.get(arch, 4)
    fillers = [r.randbytes(unit) for _ in range(16)]
    out = bytearray()
    for pos in range(0, size, unit):
        if r.randrange(3):
            out += fillers[r.randrange(16)]
            continue
        t = targets[r.randrange(8)]
        if arch == "x86":            # call rel32 (from the next insn) + 3 nops
            rel = (t - (pos + 5)) & 0xFFFFFFFF
            out += b"\xe8" + rel.to_bytes(4, "little") + b"\x90\x90\x90"
        elif arch == "arm":          # BL: 24-bit word offset from pc+8, LE
            rel = ((t - (pos + 8)) >> 2) & 0xFFFFFF
            out += bytes([rel & 0xFF, (rel >> 8) & 0xFF, rel >> 16, 0xEB])
        elif arch == "armthumb":     # BL pair: 22-bit halfword offset, pc+4
            rel = ((t - (pos + 4)) >> 1) & 0x3FFFFF
            out += bytes([(rel >> 11) & 0xFF, 0xF0 | (rel >> 19),
                          rel & 0xFF, 0xF8 | ((rel >> 8) & 7)])
        elif arch == "powerpc":      # bl: opcode 18, AA=0, LK=1, big endian
            rel = (t - pos) & 0x03FFFFFC
            out += (0x48000001 | rel).to_bytes(4, "big")
        elif arch == "sparc":        # call: 30-bit word displacement, BE
            rel = ((t - pos) >> 2) & 0x3FFFFFFF
            out += (0x40000000 | rel).to_bytes(4, "big")
        elif arch == "ia64":         # MIB bundle (template 0x10), br.call in slot 2
            rel = ((t - pos) >> 4) & 0x1FFFFF
            slot2 = (5 << 37) | ((rel & 0xFFFFF) << 13) | ((rel >> 20) << 36)
            bundle = 0x10 | (int.from_bytes(fillers[0], "little")
                             & ((1 << 87) - 1) & ~0x1F)
            bundle |= slot2 << 87
            out += bundle.to_bytes(16, "little")
    return bytes(out[:size])


def make_sparse(root):
    d = os.path.join(root, "sparse")
    mkdirs(d)
    r = rng(4000)
    # hole at the start
    sparse(os.path.join(d, "leading-hole"), MIB + 100 * KIB,
           [(MIB, r.randbytes(100 * KIB))])
    # hole in the middle
    sparse(os.path.join(d, "middle-hole"), MIB + 200 * KIB,
           [(0, r.randbytes(200 * KIB)), (MIB, text_bytes(r, 200 * KIB))])
    # hole at the end
    sparse(os.path.join(d, "trailing-hole"), 2 * MIB,
           [(0, r.randbytes(150 * KIB))])
    # nothing but a hole
    sparse(os.path.join(d, "all-hole-3MiB"), 3 * MIB, [])
    # small unaligned extents, tiny file
    sparse(os.path.join(d, "unaligned"), 500000,
           [(5000, r.randbytes(1000)), (70000, b"x"), (499990, b"0123456789")])
    # data in every other 4 KiB block: holes only visible with 4K blocks
    sparse(os.path.join(d, "every-other-4k"), 512 * KIB,
           [(off, r.randbytes(4 * KIB)) for off in range(0, 512 * KIB, 8 * KIB)])
    # 4.5 GiB (+12345 bytes: unaligned end): data at 0, ~1 GiB, straddling
    # 4 GiB, past 4 GiB and at the end.  Every builder reads the holes
    # (~2 s of CPU per image), so it is not bigger.
    size = 4 * GIB + 512 * MIB + 12345
    sparse(os.path.join(d, "huge-4.5GiB+12345"), size, [
        (0, r.randbytes(64 * KIB)),
        (GIB + 12345, text_bytes(r, 64 * KIB)),
        (4 * GIB - 64 * KIB, r.randbytes(128 * KIB)),
        (4 * GIB + 256 * MIB, mixed_bytes(4001, 256 * KIB)),
        (size - 1000, b"E" * 1000),
    ])


def make_dups(root):
    d = os.path.join(root, "dups")
    mkdirs(d)
    big = mixed_bytes(5000, 300000)
    small = b"duplicate small content\n" * 10
    for n in ["a.bin", "b.bin", "c copy.bin"]:
        write(os.path.join(d, n), big)
    for n in ["small-1", "small-2", "small-3"]:
        write(os.path.join(d, n), small)
    for n in ["empty-1", "empty-2"]:
        write(os.path.join(d, n), b"")
    # same size as a.bin but different content (dup check must compare data)
    write(os.path.join(d, "same-size-different.bin"), mixed_bytes(5001, 300000))
    # identical to files/size-131073
    write(os.path.join(d, "copy-of-size-131073"), mixed_bytes(1007, 131073))


def make_hardlinks(root):
    d = os.path.join(root, "hardlinks")
    o = os.path.join(root, "other")
    mkdirs(d, o)
    write(os.path.join(d, "three-a"), b"one inode, three names\n" * 100)
    os.link(os.path.join(d, "three-a"), os.path.join(d, "three-b"))
    os.link(os.path.join(d, "three-a"), os.path.join(d, "three-c"))
    write(os.path.join(d, "cross"), mixed_bytes(6000, 200000))
    os.link(os.path.join(d, "cross"), os.path.join(o, "cross-link"))
    write(os.path.join(d, "empty-a"), b"")
    os.link(os.path.join(d, "empty-a"), os.path.join(d, "empty-b"))
    # hard-linked fifo and symlink (link() on a symlink links the symlink)
    os.mkfifo(os.path.join(d, "fifo-a"))
    os.link(os.path.join(d, "fifo-a"), os.path.join(d, "fifo-b"))
    os.symlink("three-a", os.path.join(d, "symlink-a"))
    os.link(os.path.join(d, "symlink-a"), os.path.join(d, "symlink-b"),
            follow_symlinks=False)


def make_names(root):
    d = os.path.join(root, "names").encode()
    mkdirs(d)
    names = [
        b"x" * 255,
        ("\u00e9" * 127 + "x").encode(),          # 255 bytes of UTF-8
        b"with space", b" leading space", b"trailing space ",
        b"new\nline", b"tab\there", b"-leading-dash", b"--", b"-",
        b"star*", b"question?", b"back\\slash", b'double"quote',
        b"single'quote", b"#hash", b".hidden", b"..dots..", b"a=b",
        b"colon:name", b"semi;colon", b"pipe|name", b"dollar$name",
        b"[brackets]", b"{braces}", b"percent%20",
        "\u00fcn\u00efc\u00f6d\u00e9-\u65e5\u672c\u8a9e".encode(),
        "emoji-\U0001f980".encode(),
        b"latin1-\xe9\xff\xfe-not-utf8",
        b"ctrl-\x01\x1f\x7f",
    ]
    for i, n in enumerate(names):
        write(os.path.join(d, n), b"name %d\n" % i)
    long_dir = os.path.join(d, b"D" * 255)
    os.mkdir(long_dir)
    write(os.path.join(long_dir, b"y" * 255), b"long/long\n")
    os.symlink(b"x" * 255, os.path.join(d, b"link-to-long-name"))


def make_bigdir(root):
    d = os.path.join(root, "bigdir")
    mkdirs(d)
    for i in range(3000):
        # varied name lengths (1..100 chars of suffix) to vary dir entries
        name = "e%04d-%s" % (i, "n" * (i % 97))
        p = os.path.join(d, name)
        if i % 500 == 7:
            os.mkdir(p)
        elif i % 100 == 3:
            os.symlink("e0000-", p)
        elif i % 10 == 1:
            write(p, b"entry %d\n" % i)
        else:
            write(p, b"")


def make_deep(root):
    p = os.path.join(root, "deep")
    for i in range(1, 41):
        p = os.path.join(p, "d%02d" % i)
    os.makedirs(p)
    write(os.path.join(p, "bottom.txt"), b"40 levels down\n")


def make_ids(root):
    d = os.path.join(root, "ids")
    mkdirs(d)
    for i in range(2100):
        p = os.path.join(d, "f%04d" % i)
        write(p, b"%d\n" % i)
        os.chown(p, 100000 + i, 200000 + i)
    # extremes: nobody and the largest valid id ((uid_t)-1 is invalid)
    for name, uid in [("nobody", 65534), ("max-id", 4294967294),
                      ("id-65536", 65536)]:
        p = os.path.join(d, name)
        write(p, name.encode() + b"\n")
        os.chown(p, uid, uid)
    os.chown(d, 1000, 1000)


def make_modes(root):
    d = os.path.join(root, "modes")
    mkdirs(d)
    for name, mode in [("setuid-4755", 0o4755), ("setgid-2755", 0o2755),
                       ("all-bits-7777", 0o7777), ("mode-000", 0o000),
                       ("write-only-0200", 0o200), ("read-only-0444", 0o444),
                       ("exec-only-0111", 0o111), ("setuid-no-x-4644", 0o4644)]:
        p = os.path.join(d, name)
        write(p, name.encode() + b"\n")
        os.chown(p, 1234, 5678)      # chown before chmod: chown drops setuid
        os.chmod(p, mode)
    for name, mode in [("sticky-1777", 0o1777), ("setgid-dir-2775", 0o2775),
                       ("dir-000", 0o000), ("dir-0700", 0o700)]:
        p = os.path.join(d, name)
        os.mkdir(p)
        if name != "dir-000":
            write(os.path.join(p, "inside"), b"inside\n")
        os.chmod(p, mode)


def make_times(root):
    d = os.path.join(root, "times")
    mkdirs(d)
    for name, t in [("t-0", 0), ("t-1", 1), ("t-2147483647", 2147483647),
                    ("t-2147483648", 2147483648), ("t-4294967295", 4294967295)]:
        p = os.path.join(d, name)
        write(p, name.encode() + b"\n")
        MTIME_OVERRIDES[p] = t
    for name, t in [("dir-t-0", 0), ("dir-t-4294967295", 4294967295)]:
        p = os.path.join(d, name)
        os.mkdir(p)
        write(os.path.join(p, "f"), b"f\n")
        MTIME_OVERRIDES[p] = t
    p = os.path.join(d, "symlink-t-4294967295")
    os.symlink("t-0", p)
    MTIME_OVERRIDES[p] = 4294967295
    p = os.path.join(d, "fifo-t-0")
    os.mkfifo(p)
    MTIME_OVERRIDES[p] = 0


def setx(path, name, value):
    os.setxattr(path, name, value, follow_symlinks=False)


def make_xattrs(root):
    d = os.path.join(root, "xattrs")
    mkdirs(d)
    p = os.path.join(d, "three-prefixes")
    write(p, b"user trusted security\n")
    setx(p, "user.test", b"user value")
    setx(p, "trusted.test", b"trusted value")
    setx(p, "security.test", b"security value")

    long_value = text_bytes(rng(7000), 3000)
    for name in ["long-value", "long-value-same"]:   # shared (out-of-line) value
        p = os.path.join(d, name)
        write(p, b"3000 byte xattr\n")
        setx(p, "user.long", long_value)

    p = os.path.join(d, "many")
    write(p, b"many xattrs\n")
    for i in range(20):
        setx(p, "user.k%02d" % i, b"v%d" % i)
    setx(p, "trusted.many", b"t")
    setx(p, "security.many", b"s")

    # identical xattr sets on two files: may share one xattr id
    for name in ["same-set-1", "same-set-2"]:
        p = os.path.join(d, name)
        write(p, name.encode() + b"\n")
        setx(p, "user.shared", b"same")
        setx(p, "trusted.shared", b"same")

    p = os.path.join(d, "empty-and-binary")
    write(p, b"edge values\n")
    setx(p, "user.empty", b"")
    setx(p, "user.binary", bytes(range(256)))
    setx(p, "user." + "k" * 200, b"long key")

    p = os.path.join(d, "dir-with-xattrs")
    os.mkdir(p)
    write(os.path.join(p, "plain"), b"no xattrs here\n")
    setx(p, "user.dir", b"dir value")
    setx(p, "trusted.dir", b"dir trusted")
    setx(p, "security.dir", b"dir security")

    # symlinks: user.* is not allowed on symlinks, trusted./security. are
    p = os.path.join(d, "symlink-with-xattrs")
    os.symlink("three-prefixes", p)
    setx(p, "trusted.link", b"link trusted")
    setx(p, "security.link", b"link security")

    p = os.path.join(d, "fifo-with-xattr")
    os.mkfifo(p)
    setx(p, "trusted.fifo", b"fifo")
    p = os.path.join(d, "chardev-with-xattr")
    os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    setx(p, "trusted.dev", b"dev")

    setx(d, "user.xattrs-dir", b"on the xattrs/ directory itself")


def make_links(root):
    d = os.path.join(root, "links")
    mkdirs(d)
    write(os.path.join(d, "target"), b"symlink target\n")
    for name, target in [
        ("short", "target"),
        ("one-char", "t"),
        ("absolute", "/etc/passwd"),
        ("relative", "../files/size-1"),
        ("dangling", "does/not/exist"),
        ("to-dir", "../deep"),
        ("chain-1", "chain-2"), ("chain-2", "chain-3"), ("chain-3", "target"),
        ("loop", "loop"),
        ("dot", "."),
        ("odd target", "with space/new\nline/\u00e9"),
        ("max-4095", "/".join(["p" * 254] * 17)[:4095]),
    ]:
        os.symlink(target, os.path.join(d, name))
    assert len(os.readlink(os.path.join(d, "max-4095"))) == 4095


def make_dev(root):
    d = os.path.join(root, "dev")
    mkdirs(d)
    for name, kind, mode, major, minor in [
        ("null", stat.S_IFCHR, 0o666, 1, 3),
        ("char-max", stat.S_IFCHR, 0o600, 4095, 1048575),  # 12/20 bit max
        ("char-whiteout", stat.S_IFCHR, 0o000, 0, 0),      # overlayfs whiteout
        ("char-minor-256", stat.S_IFCHR, 0o640, 4, 256),
        ("block-loop0", stat.S_IFBLK, 0o660, 7, 0),
        ("block-max", stat.S_IFBLK, 0o600, 4095, 1048575),
        ("block-259-big-minor", stat.S_IFBLK, 0o660, 259, 1048575),
    ]:
        p = os.path.join(d, name)
        os.mknod(p, mode | kind, os.makedev(major, minor))
        os.chmod(p, mode)
    os.chown(os.path.join(d, "block-loop0"), 0, 6)
    os.mkfifo(os.path.join(d, "fifo"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(d, "socket"))
    s.close()
    os.chmod(os.path.join(d, "socket"), 0o755)


def set_times(root):
    broot = root.encode()
    over = {k.encode(): v for k, v in MTIME_OVERRIDES.items()}
    dirs = []
    for top, dnames, fnames in os.walk(broot):
        dirs.append(top)
        for n in fnames + [x for x in dnames if os.path.islink(os.path.join(top, x))]:
            p = os.path.join(top, n)
            t = over.get(p, FIXED_MTIME)
            os.utime(p, (t, t), follow_symlinks=False)
    # directories last, deepest first
    for top in sorted(dirs, key=lambda x: -x.count(b"/")):
        t = over.get(top, FIXED_MTIME)
        os.utime(top, (t, t), follow_symlinks=False)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--fake-code":
        # used by build-tiny.sh: make-tree.py --fake-code ARCH SIZE FILE
        with open(sys.argv[4], "wb") as f:
            f.write(fake_code(sys.argv[2], int(sys.argv[3])))
        return
    if len(sys.argv) != 2:
        sys.exit("usage: make-tree.py DEST | make-tree.py --fake-code ARCH SIZE FILE")
    if os.geteuid() != 0:
        sys.exit("make-tree.py: must run as root (mknod, chown, trusted.* xattrs)")
    root = os.path.abspath(sys.argv[1])
    if os.path.lexists(root):
        sys.exit("make-tree.py: %s already exists" % root)
    os.umask(0o022)
    os.makedirs(root)
    for step in [make_files, make_data, make_bin, make_sparse, make_dups,
                 make_hardlinks, make_names, make_bigdir, make_deep, make_ids,
                 make_modes, make_times, make_xattrs, make_links, make_dev]:
        step(root)
    os.chmod(root, 0o755)
    set_times(root)


if __name__ == "__main__":
    main()
