#!/usr/bin/env python3
"""Apply one recovered PedOS increment to the recovered volumes of its base.

Usage: pedos-apply-delta.py DIR INCREMENT_DIR

DIR holds a recovered full backup (its backup-header and its files, as the
emergency procedure in doc/emergency-restore.md leaves them), or the result
of earlier runs of this script. INCREMENT_DIR holds the next archive of the
chain, recovered the same way: its backup-header, qubes.xml, its map
pedos-chain, a sparse image NAME.delta for each volume it changes, and the
files it stores whole (changed small files, new VMs, the dom0 home).

Checks, before anything in DIR changes: the increment's base is the backup
DIR holds (its id), each volume's size and root are the base's, and every
file the increment keeps is in DIR. After applying, each volume's root must
be the increment's. Then the files stored whole are moved from
INCREMENT_DIR into DIR, and the VM files the increment neither changes,
keeps nor stores (those of a removed VM) are deleted from DIR, as is a dom0
home it does not hold: DIR then holds exactly the increment's backup.

Only the Python 3 standard library is needed. Exit status 0 on success, 1
with the reason on stderr otherwise. A volume that fails its last check is
left half changed: start again from the full backup.
"""

import errno
import hashlib
import os
import re
import shutil
import sys

BLOCK = 64 << 10
MAX_SIZE = 16 << 40
MAX_MAP = 64 << 20
MARK = ".pedos-chain-at"  # the id of the last archive applied to DIR
ID = re.compile(r"^[A-Za-z0-9-]{1,128}$")
FILE = re.compile(r"^vm[0-9]{1,9}/[a-z0-9_.-]+$")  # a VM's stored file
CHUNK = re.compile(r"\.[0-9]+(\.enc)?$")  # the archive's pieces, not files


class Refused(Exception):
    pass


def header_value(path, key):
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k == key:
                return v
    return None


def parse_map(data):
    """The map, refused on anything the writer would not write."""
    if len(data) > MAX_MAP:
        raise Refused("the map is too large")
    lines = data.decode("ascii").split("\n")
    if len(lines) < 4 or lines[0] != "pedos-chain 1" or lines[-1] != "" or lines[-2] != "end":
        raise Refused("not a pedos-chain 1 map ending in 'end'")
    lines = lines[1:-2]
    if not lines[0].startswith("base ") or not ID.match(lines[0][5:]):
        raise Refused("no base backup id in the map")
    base, volumes, keep, names = lines[0][5:], [], [], set()

    def size(s):
        if not re.match(r"^(0|[1-9][0-9]*)$", s) or int(s) > MAX_SIZE:
            raise Refused("%r is not a size" % s[:60])
        return int(s)

    def root(s):
        if not re.match(r"^[0-9a-f]{64}$", s):
            raise Refused("%r is not a root" % s[:60])
        return s

    for n, line in enumerate(lines[1:], start=3):
        f = line.split(" ")
        if f[0] == "volume" and len(f) == 6:
            if not FILE.match(f[1]) or not f[1].endswith(".img") or ".." in f[1] or f[1] in names or keep:
                raise Refused("line %d: volume name %r unsafe or repeated, or after a kept file" % (n, f[1][:60]))
            names.add(f[1])
            volumes.append({"name": f[1], "base_size": size(f[2]), "base_root": root(f[3]),
                            "size": size(f[4]), "root": root(f[5]), "extents": []})
        elif f[0] == "keep" and len(f) == 2:
            if not FILE.match(f[1]) or ".." in f[1] or f[1] in names or (keep and f[1] <= keep[-1]):
                raise Refused("line %d: kept file %r unsafe, repeated or out of order" % (n, f[1][:60]))
            names.add(f[1])
            keep.append(f[1])
        elif f[0] in ("data", "zero") and len(f) == 3 and volumes and not keep:
            v, off, length = volumes[-1], size(f[1]), size(f[2])
            prev = v["extents"][-1] if v["extents"] else None
            if (length == 0 or off % BLOCK or length > v["size"] - off
                    or (length % BLOCK and off + length != v["size"])
                    or (prev and off < prev[1] + prev[2])):
                raise Refused("line %d: extent %d+%d out of order, overlapping, or off the volume" % (n, off, length))
            v["extents"].append((f[0] == "zero", off, length))
        else:
            raise Refused("line %d: unexpected %r" % (n, line[:60]))
    return base, volumes, keep


def data_regions(f, size):
    """(offset, length) of the data in f below size; all of it without SEEK_DATA."""
    try:
        out, off = [], 0
        while off < size:
            try:
                start = os.lseek(f.fileno(), off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break  # no data after off
                raise
            if start >= size:
                break
            end = min(os.lseek(f.fileno(), start, os.SEEK_HOLE), size)
            out.append((start, end - start))
            off = end
        return out
    except (AttributeError, OSError):
        return [(0, size)]  # the file system cannot tell: read it all


def volume_root(path, size):
    """The volume's root: SHA-256 over a header and each 64 KiB block's SHA-256."""
    nblocks = (size + BLOCK - 1) // BLOCK
    zero = hashlib.sha256(bytes(BLOCK)).digest()
    digests = [zero] * nblocks
    if size % BLOCK:
        digests[-1] = hashlib.sha256(bytes(size % BLOCK)).digest()
    with open(path, "rb") as f:
        done = -1
        for off, length in data_regions(f, size):
            for b in range(off // BLOCK, (off + length + BLOCK - 1) // BLOCK):
                if b <= done:
                    continue
                f.seek(b * BLOCK)
                block = f.read(min(BLOCK, size - b * BLOCK))
                digests[b] = hashlib.sha256(block).digest()
                done = b
    h = hashlib.sha256(b"pedos-volume-root 1\n%d\n%d\n" % (size, BLOCK))
    for d in digests:
        h.update(d)
    return h.hexdigest()


def apply_volume(v, target, delta):
    with open(target, "r+b") as img, open(delta, "rb") as src:
        img.truncate(v["size"])
        for is_zero, off, length in v["extents"]:
            img.seek(off)
            src.seek(off)
            while length > 0:
                n = min(length, 1 << 20)
                chunk = bytes(n) if is_zero else src.read(n)
                if len(chunk) != n:
                    raise Refused("%s: the delta ends early at %d" % (v["name"], off))
                img.write(chunk)
                length -= n
                off += n


def names_of(volumes, keep):
    return set(keep) | {v["name"] for v in volumes}


def stored_whole(inc):
    """What the increment stores whole: qubes.xml, VM files, the dom0 home."""
    out = ["qubes.xml"] if os.path.isfile(os.path.join(inc, "qubes.xml")) else []
    for entry in sorted(os.listdir(inc)):
        path = os.path.join(inc, entry)
        if entry == "dom0-home" and os.path.isdir(path):
            out += ["dom0-home/" + user for user in sorted(os.listdir(path))]
        elif re.match(r"^vm[0-9]{1,9}$", entry) and os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if not name.endswith(".delta") and not CHUNK.search(name):
                    if not FILE.match(entry + "/" + name) or not os.path.isfile(os.path.join(path, name)):
                        raise Refused("%s/%s: not a file a backup stores" % (entry, name[:60]))
                    out.append(entry + "/" + name)
    return out


def main(args):
    if len(args) != 2:
        raise Refused("usage: pedos-apply-delta.py DIR INCREMENT_DIR")
    target, inc = args
    at = None
    if os.path.exists(os.path.join(target, MARK)):
        with open(os.path.join(target, MARK)) as f:
            at = f.read().strip()
    else:
        at = header_value(os.path.join(target, "backup-header"), "backup-id")
    inc_id = header_value(os.path.join(inc, "backup-header"), "backup-id")
    with open(os.path.join(inc, "pedos-chain"), "rb") as f:
        base, volumes, keep = parse_map(f.read(MAX_MAP + 1))
    if header_value(os.path.join(inc, "backup-header"), "pedos-base") != base:
        raise Refused("the increment's header and its map name different bases")
    if base != at:
        raise Refused("this increment applies to backup %s, but %s holds backup %s: apply the chain in order" % (base, target, at))
    # Every check that reads only the base first: nothing changes if one fails.
    for v in volumes:
        path = os.path.join(target, v["name"])
        if not os.path.isfile(path) or os.path.getsize(path) != v["base_size"]:
            raise Refused("%s: the base image is missing or not %d bytes" % (v["name"], v["base_size"]))
        if not os.path.isfile(os.path.join(inc, v["name"] + ".delta")):
            raise Refused("%s: no delta %s.delta in the increment" % (v["name"], v["name"]))
        if volume_root(path, v["base_size"]) != v["base_root"]:
            raise Refused("%s: the base image is not the one this increment applies to" % v["name"])
    for name in keep:
        if not os.path.isfile(os.path.join(target, name)):
            raise Refused("%s: kept from the base, but not in %s" % (name, target))
    whole = stored_whole(inc)
    if set(whole) & names_of(volumes, keep):
        raise Refused("the increment both stores and changes or keeps %s" % sorted(set(whole) & names_of(volumes, keep))[0])
    for v in volumes:
        path = os.path.join(target, v["name"])
        apply_volume(v, path, os.path.join(inc, v["name"] + ".delta"))
        if volume_root(path, v["size"]) != v["root"]:
            raise Refused("%s: the result does not match the increment's root: the delta is damaged" % v["name"])
    # The files the increment stores whole replace the base's; what it
    # neither changes, keeps nor stores is no longer part of the backup.
    if any(rel.startswith("dom0-home/") for rel in whole) and os.path.isdir(os.path.join(target, "dom0-home")):
        shutil.rmtree(os.path.join(target, "dom0-home"))
    for rel in whole:
        dst = os.path.join(target, rel)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.move(os.path.join(inc, rel), dst)
    result = names_of(volumes, keep) | set(whole)
    for entry in sorted(os.listdir(target)):
        if entry == "dom0-home" and "dom0-home" not in {r.split("/")[0] for r in whole}:
            shutil.rmtree(os.path.join(target, entry))
        elif re.match(r"^vm[0-9]{1,9}$", entry) and os.path.isdir(os.path.join(target, entry)):
            for name in os.listdir(os.path.join(target, entry)):
                rel = entry + "/" + name
                if rel not in result and not CHUNK.search(name) and os.path.isfile(os.path.join(target, rel)):
                    os.remove(os.path.join(target, rel))
    with open(os.path.join(target, MARK), "w") as f:
        f.write(inc_id + "\n")
    print("applied %s (%d volume(s)) to %s" % (inc_id, len(volumes), target))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (Refused, OSError, UnicodeDecodeError) as e:
        print("pedos-apply-delta: %s" % e, file=sys.stderr)
        sys.exit(1)
