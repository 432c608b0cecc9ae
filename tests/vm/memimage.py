#!/usr/bin/env python3
"""memimage: the host side of the VM lab's memory checks: a LiME image of the guest's RAM against
the guest's own /proc/iomem and /proc/version, read independently of the collector.

  memimage.py check --image FILE --iomem FILE --version FILE [--manifest FILE] [--label L]
      The image's LiME headers (u32 LE magic 0x4C694D45, u32 version 1, u64 start, u64 end
      inclusive, 8 zero bytes, then end - start + 1 bytes) are exactly the `System RAM` ranges at
      the top level of IOMEM, same bounds, same order, nothing else in the file; its size is their
      sum + 32 per range; the /proc/version line (VERSION) occurs in its bytes. With --manifest,
      the collector's manifest agrees: source.kind memory, its ranges (end exclusive) and image
      offsets, the banner, the kernel release, the image's size and SHA-256. Exit 1 with every
      failed check.

  memimage.py volatility --vol PATH --image FILE --version FILE
      Runs Volatility 3's `banners.Banners` on the image (`vol -q -f IMAGE banners.Banners`; it
      needs no symbol table) and checks that it prints the guest's /proc/version banner.

  memimage.py --endpoint URL get --bucket B --key K --out FILE
      Downloads one object from moto (a memory image, to check it as the directory capture is).

  memimage.py --endpoint URL nothing-left --bucket B --prefix P
      No object under s3://B/P and no multipart upload open in B: what a refused or interrupted
      capture must leave.

  memimage.py kcore-script --kcore-head FILE --iomem FILE --out PATH
      Prints a shell script that copies each `System RAM` range out of the guest's /proc/kcore with
      dd (FILE: the first 64 KiB of /proc/kcore, its ELF program headers): the bench's raw-read
      baseline, no LiME headers, no hashing.

  memimage.py self-test
      Runs every check of `check` on made-up images: a correct one must pass, and each kind of
      wrong image or manifest must fail the check meant to catch it. run.sh runs it first.

  memimage.py ram --iomem FILE
      Prints the bytes of System RAM in IOMEM (the sum of its top-level ranges).
"""

import argparse
import hashlib
import mmap
import os
import re
import struct
import subprocess
import sys

from evidence import Checks, finish, s3_client

LIME_MAGIC = 0x4C694D45
HEADER = struct.Struct("<IIQQ8s")
IOMEM_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$")


def ram_ranges(iomem_text):
    """The top-level `System RAM` ranges of /proc/iomem as (start, end inclusive), in its order
    (as AVML reads them; nested entries are parts of a top-level one). Read as root: otherwise the
    kernel shows every address as 0."""
    ranges = []
    for line in iomem_text.splitlines():
        m = IOMEM_LINE.match(line)
        if m:
            ranges.append((int(m.group(1), 16), int(m.group(2), 16)))
    if any(start == 0 and end == 0 for start, end in ranges):
        raise SystemExit("memimage: /proc/iomem was read without root (all addresses 0)")
    return ranges


def lime_headers(image):
    """Walks the image's LiME headers: [(start, end inclusive, offset of the range's first byte)],
    or raises ValueError at the first thing that is not a well-formed header or a range past the
    end of the file."""
    headers, offset, size = [], 0, os.path.getsize(image)
    with open(image, "rb") as f:
        while offset < size:
            f.seek(offset)
            raw = f.read(HEADER.size)
            if len(raw) < HEADER.size:
                raise ValueError(f"{size - offset} stray bytes at offset {offset}")
            magic, version, start, end, reserved = HEADER.unpack(raw)
            if magic != LIME_MAGIC or version != 1 or reserved != bytes(8) or end < start:
                raise ValueError(f"no LiME v1 header at offset {offset} (magic {magic:#x}, version {version}, "
                                 f"{start:#x}-{end:#x}, reserved {reserved.hex()})")
            data = offset + HEADER.size
            offset = data + end - start + 1
            if offset > size:
                raise ValueError(f"range {start:#x}-{end:#x} at offset {data} runs past the end ({size} bytes)")
            headers.append((start, end, data))
    return headers


def banner_of(version_file):
    with open(version_file) as f:
        line = f.read().strip("\n")
    if not line.startswith("Linux version "):
        raise SystemExit(f"memimage: {version_file} is not a /proc/version line: {line[:80]!r}")
    return line


def check_image(args):
    with open(args.iomem) as f:
        want = ram_ranges(f.read())
    check = Checks()
    inspect(check, args.label or os.path.basename(args.image), args.image, want, banner_of(args.version),
            args.manifest)
    return finish(check.failures)


def inspect(check, label, image, want, banner, manifest=None):
    """Every check of one image (and its manifest) against the guest's ranges and banner."""
    size = os.path.getsize(image)
    print(f"      {label}: {size} bytes; guest's System RAM: "
          + ", ".join(f"{s:#x}-{e:#x}" for s, e in want))
    check(bool(want), f"{label}: the guest's /proc/iomem lists System RAM")
    try:
        headers = lime_headers(image)
        error = None
    except ValueError as e:
        headers, error = [], str(e)
    check(error is None, f"{label}: the whole file is LiME v1 headers and their ranges" + (f" ({error})" if error else ""))
    got = [(s, e) for s, e, _ in headers]
    check(got == want, f"{label}: one LiME header per System RAM range, same bounds, same order, no other "
                       f"({len(got)} headers, {len(want)} ranges" + ("" if got == want else f"; got {[(hex(s), hex(e)) for s, e in got]}") + ")")
    expected_size = sum(e - s + 1 for s, e in want) + HEADER.size * len(want)
    check(size == expected_size, f"{label}: size {size} = sum of the ranges + 32 x {len(want)} ({expected_size})")
    at = -1
    if size:
        with open(image, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            at = m.find(banner.encode())
    check(at >= 0, f"{label}: the guest's banner {banner[:48]!r}... is in the image" + (f" (offset {at})" if at >= 0 else ""))
    if manifest:
        check_manifest(check, label, manifest, image, want, headers, banner)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def check_manifest(check, label, manifest_file, image, want, headers, banner):
    """The collector's manifest against the image and the guest (docs/manifest.md, schema 5)."""
    import json

    with open(manifest_file) as f:
        manifest = json.load(f)
    source = manifest.get("source", {})
    memory = source.get("memory") or {}
    check(source.get("kind") == "memory", f"{label}: manifest source.kind memory (got {source.get('kind')})")
    ranges = memory.get("ranges") or []
    got = [(r.get("start"), r.get("end")) for r in ranges]
    check(got == [(s, e + 1) for s, e in want],
          f"{label}: manifest ranges = System RAM (end exclusive) (got {got[:4]}{'...' if len(got) > 4 else ''})")
    offsets = [r.get("image_offset") for r in ranges]
    check(offsets == [data for _, _, data in headers], f"{label}: manifest image offsets = the image's (got {offsets[:4]})")
    check(all(r.get("bytes_read") == r.get("end", 0) - r.get("start", 0) for r in ranges),
          f"{label}: manifest bytes_read = each range's size")
    check(memory.get("banner") == banner, f"{label}: manifest banner = /proc/version (got {memory.get('banner')!r})")
    release = banner.split()[2]
    check(memory.get("kernel_release") == release, f"{label}: manifest kernel_release {release} (got {memory.get('kernel_release')})")
    check(memory.get("reader") in ("kcore", "crash", "mem"), f"{label}: manifest reader named (got {memory.get('reader')})")
    image_facts = manifest.get("image", {})
    size = os.path.getsize(image)
    check(image_facts.get("size_bytes", size) == size, f"{label}: manifest image size {image_facts.get('size_bytes')} = {size}")
    sha = sha256_of(image)
    check(image_facts.get("hashes", {}).get("sha256") == sha, f"{label}: manifest sha256 = sha256 of the image")


def volatility(args):
    banner = banner_of(args.version)
    run = subprocess.run([args.vol, "-q", "-f", args.image, "banners.Banners"], check=False,
                         capture_output=True, text=True, timeout=args.timeout)
    lines = run.stdout.splitlines()
    found = [line for line in lines if banner in line]
    print(f"      vol banners.Banners: exit {run.returncode}, {len(lines)} lines; "
          f"first with the banner: {found[0][:120] if found else None!r}")
    check = Checks()
    if run.returncode != 0:
        print(run.stderr[-2000:], file=sys.stderr)
    check(run.returncode == 0 and bool(found), "Volatility 3 banners.Banners prints the guest's banner")
    return finish(check.failures)


def get(args):
    s3 = s3_client(args.endpoint)
    s3.download_file(args.bucket, args.key, args.out)
    return 0


def nothing_left(args):
    check = Checks()
    s3 = s3_client(args.endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=args.bucket, Prefix=args.prefix).get("Contents", [])]
    check(not keys, f"no object under s3://{args.bucket}/{args.prefix} (got {keys})")
    uploads = s3.list_multipart_uploads(Bucket=args.bucket).get("Uploads", [])
    check(not uploads, f"no multipart upload open in {args.bucket} (got {[u['Key'] for u in uploads]})")
    return finish(check.failures)


def kcore_script(args):
    """dd commands reading each System RAM range out of /proc/kcore: its PT_LOAD segments map
    physical addresses (p_paddr) onto file offsets; each byte comes from the first segment (by
    physical address) that maps it."""
    with open(args.kcore_head, "rb") as f:
        head = f.read()
    with open(args.iomem) as f:
        want = ram_ranges(f.read())
    if head[:4] != b"\x7fELF" or head[4] != 2:
        raise SystemExit("memimage: not a 64-bit ELF header")
    phoff, = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", head, phoff + i * phentsize)
        if p_type == 1 and p_paddr != 2**64 - 1:
            segments.append((p_paddr, p_paddr + p_filesz, p_offset))
    print("set -e")
    print(f": > {args.out}")
    for start, end in want:
        # kcore maps whole pages only: a range's partial last page (0x9f000-0x9fbff in a q35
        # guest) is in no segment, and is left out here. The kernel's text segment maps physical
        # pages the direct map has too: each byte is read once.
        at = start
        for seg_start, seg_end, seg_offset in sorted(segments):
            lo, hi = max(at, seg_start), min(end + 1, seg_end)
            if lo < hi:
                at = hi
                print(f"dd if=/proc/kcore of={args.out} bs=1M iflag=skip_bytes,count_bytes oflag=append "
                      f"conv=notrunc skip={seg_offset + lo - seg_start} count={hi - lo} status=none")
    return 0


def ram(args):
    with open(args.iomem) as f:
        print(sum(end - start + 1 for start, end in ram_ranges(f.read())))
    return 0


# The self-test's guest: two System RAM ranges (one ending mid-page, as a q35 guest's first does),
# a nested entry and reserved ranges around them that must not count.
SELF_IOMEM = """00000000-00000fff : Reserved
00001000-00002bff : System RAM
00002c00-00002fff : Reserved
00010000-00017fff : System RAM
  00011000-00011fff : Kernel code
00018000-0001ffff : PCI Bus 0000:00
"""
SELF_BANNER = "Linux version 6.1.0-selftest (memimage.py) #1 SMP PREEMPT_DYNAMIC"


def self_test(args):
    """Every check on made-up images: a correct one passes, and each kind of wrong image or
    manifest fails the check meant to catch it (and the run fails). Proves the checks can fail."""
    import contextlib
    import io
    import json
    import tempfile

    want = ram_ranges(SELF_IOMEM)
    # (name, ranges as written, banner planted, stray tail, manifest changes, the failing check's words)
    cases = [
        ("correct", want, True, b"", {}, None),
        ("a range's end one byte short", [(0x1000, 0x2bfe), want[1]], True, b"", {}, "same bounds"),
        ("the partial page left out", [(0x1000, 0x1fff), want[1]], True, b"", {}, "same bounds"),
        ("a range split in two headers", [want[0], (0x10000, 0x13fff), (0x14000, 0x17fff)], True, b"", {},
         "same bounds"),
        ("ranges in the other order", [want[1], want[0]], True, b"", {}, "same order"),
        ("a reserved range imaged too", [(0, 0xfff), *want], True, b"", {}, "no other"),
        ("a stray byte after the last range", want, True, b"\0", {}, "LiME v1 headers and their ranges"),
        ("no banner in the bytes", want, False, b"", {}, "banner"),
        ("manifest: source.kind disk", want, True, b"", {"kind": "disk"}, "source.kind"),
        ("manifest: ends inclusive", want, True, b"", {"end": -1}, "manifest ranges"),
        ("manifest: offsets of the headers", want, True, b"", {"offset": -32}, "image offsets"),
        ("manifest: a range read short", want, True, b"", {"bytes_read": -4096}, "bytes_read"),
        ("manifest: another banner", want, True, b"", {"banner": SELF_BANNER + " x"}, "manifest banner"),
        ("manifest: another image's sha256", want, True, b"", {"sha256": "0" * 64}, "sha256"),
    ]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ranges, planted, tail, change, catch in cases:
            image, manifest = os.path.join(tmp, "image.lime"), os.path.join(tmp, "manifest.json")
            body, offsets = bytearray(), []
            for i, (start, end) in enumerate(ranges):
                body += HEADER.pack(LIME_MAGIC, 1, start, end, bytes(8))
                offsets.append(len(body))
                data = bytearray((start + j) % 251 for j in range(end - start + 1))
                if planted and i == len(ranges) - 1:
                    data[0x800:0x800 + len(SELF_BANNER)] = SELF_BANNER.encode()
                body += data
            body += tail
            with open(image, "wb") as f:
                f.write(body)
            memory = {"reader": "kcore", "banner": change.get("banner", SELF_BANNER),
                      "kernel_release": "6.1.0-selftest",
                      "ranges": [{"start": s, "end": e + 1 + change.get("end", 0),
                                  "image_offset": o + change.get("offset", 0),
                                  "bytes_read": e + 1 - s + change.get("bytes_read", 0)}
                                 for (s, e), o in zip(ranges, offsets)]}
            with open(manifest, "w") as f:
                json.dump({"source": {"kind": change.get("kind", "memory"), "memory": memory},
                           "image": {"size_bytes": len(body),
                                     "hashes": {"sha256": change.get("sha256", hashlib.sha256(body).hexdigest())}}}, f)
            check = Checks()
            with contextlib.redirect_stdout(io.StringIO()):
                inspect(check, name, image, want, SELF_BANNER, manifest)
            caught = [f for f in check.failures if catch and catch in f]
            ok = not check.failures if catch is None else bool(caught)
            print(("ok    " if ok else "FAIL  ") + f"self-test {name}: " +
                  ("passes" if catch is None else f"fails '{caught[0] if caught else catch}'")
                  + ("" if ok else f" (failed: {check.failures})"))
            if not ok:
                failures.append(name)
    return finish(failures)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", help="moto's URL (get, nothing-left)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    for name in ("image", "iomem", "version"):
        c.add_argument(f"--{name}", required=True)
    c.add_argument("--manifest")
    c.add_argument("--label")
    v = sub.add_parser("volatility")
    for name in ("vol", "image", "version"):
        v.add_argument(f"--{name}", required=True)
    v.add_argument("--timeout", type=float, default=600)
    g = sub.add_parser("get")
    for name in ("bucket", "key", "out"):
        g.add_argument(f"--{name}", required=True)
    n = sub.add_parser("nothing-left")
    for name in ("bucket", "prefix"):
        n.add_argument(f"--{name}", required=True)
    k = sub.add_parser("kcore-script")
    for name in ("kcore-head", "iomem", "out"):
        k.add_argument(f"--{name}", required=True)
    sub.add_parser("self-test")
    r = sub.add_parser("ram")
    r.add_argument("--iomem", required=True)
    args = p.parse_args()
    return {"ram": ram, "self-test": self_test,"check": check_image, "volatility": volatility, "get": get, "nothing-left": nothing_left,
            "kcore-script": kcore_script}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
