#!/usr/bin/env python3
"""memimage: the host side of the VM lab's memory checks: a LiME image of the guest's RAM against
the guest's own /proc/iomem and /proc/version, read independently of the collector.

  memimage.py check --image FILE --iomem FILE --version FILE [--kcore-head FILE] [--manifest FILE]
                    [--label L] [--subset]
      The image's LiME headers (u32 LE magic 0x4C694D45, u32 version 1, u64 start, u64 end
      inclusive, 8 zero bytes, then end - start + 1 bytes) are exactly the `System RAM` ranges at
      the top level of IOMEM, same bounds, same order, nothing else in the file; its size is their
      sum + 32 per range; the /proc/version line (VERSION) occurs in its bytes. With --manifest,
      the collector's manifest agrees: source.kind memory, its ranges (end exclusive) and image
      offsets (of each range's LiME header), the banner, the kernel release, the image's size and SHA-256. With --kcore-head (the
      guest's first 64 KiB of /proc/kcore), the parts of the ranges kcore maps no page of (a range
      ending mid-page) must be zeros in the image and, in the manifest, bad ranges (ENXIO) not
      counted as read, status completed_with_errors. --subset (avml's image, which leaves out
      all-zero blocks): the headers need only lie inside the ranges, in order. Exit 1 with every
      failed check.

  memimage.py holes --iomem FILE --kcore-head FILE
      Prints those unmapped parts (START-END inclusive, space-separated; nothing when none).

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
            args.manifest, read_holes(args.kcore_head, want), args.subset)
    return finish(check.failures)


def inspect(check, label, image, want, banner, manifest=None, holes=(), subset=False):
    """Every check of one image (and its manifest) against the guest's ranges and banner. HOLES:
    the parts of those ranges /proc/kcore does not map (kcore_holes), when kcore was read: zeros
    in the image, recorded as bad ranges in the manifest. SUBSET: the headers need only lie inside
    the ranges, in order (avml's image leaves out all-zero blocks); the size and banner checks
    then hold against those headers."""
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
    if subset:
        inside = all(any(s <= a and b <= e for s, e in want) for a, b in got)
        ordered = all(got[i][1] < got[i + 1][0] for i in range(len(got) - 1))
        check(bool(got) and inside and ordered,
              f"{label}: (subset) {len(got)} LiME headers, in order, each inside one System RAM range")
        want = got
    check(got == want, f"{label}: one LiME header per System RAM range, same bounds, same order, no other "
                       f"({len(got)} headers, {len(want)} ranges" + ("" if got == want else f"; got {[(hex(s), hex(e)) for s, e in got]}") + ")")
    expected_size = sum(e - s + 1 for s, e in want) + HEADER.size * len(want)
    check(size == expected_size, f"{label}: size {size} = sum of the ranges + 32 x {len(want)} ({expected_size})")
    at = -1
    if size:
        with open(image, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            at = m.find(banner.encode())
    check(at >= 0, f"{label}: the guest's banner {banner[:48]!r}... is in the image" + (f" (offset {at})" if at >= 0 else ""))
    spans = hole_spans(holes, want, headers) if got == want else []
    if spans:
        with open(image, "rb") as f:
            zero = all(f.seek(offset) >= 0 and f.read(length) == bytes(length) for offset, length in spans)
        check(zero, f"{label}: zeros where /proc/kcore maps nothing ({', '.join(f'{lo:#x}-{hi - 1:#x}' for lo, hi in holes)})")
    if manifest:
        check_manifest(check, label, manifest, image, want, headers, banner, holes, spans)


def hole_spans(holes, want, headers):
    """Each hole's (image offset, length), given headers that match WANT."""
    spans = []
    for lo, hi in holes:
        index = next(i for i, (s, e) in enumerate(want) if s <= lo <= e)
        spans.append((headers[index][2] + lo - want[index][0], hi - lo))
    return spans


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def check_manifest(check, label, manifest_file, image, want, headers, banner, holes=(), spans=()):
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
    # image_offset: where the range's LiME header starts (its bytes follow the 32-byte header).
    offsets = [r.get("image_offset") for r in ranges]
    check(offsets == [data - HEADER.size for _, _, data in headers],
          f"{label}: manifest image offsets = the image's LiME headers' (got {offsets[:4]})")
    lost = [sum(hi - lo for lo, hi in holes if s <= lo <= e) for s, e in want]
    read = [r.get("bytes_read") for r in ranges]
    check(read == [e + 1 - s - n for (s, e), n in zip(want, lost)],
          f"{label}: manifest bytes_read = each range's size less what kcore does not map (got {read[:4]}, lost {lost[:4]})")
    reader = memory.get("reader")
    check(reader == "kcore" or not holes, f"{label}: manifest reader kcore, the first usable (got {reader})")
    bad = sorted((b.get("offset"), b.get("length"), b.get("errno")) for b in manifest.get("bad_ranges") or [])
    enxio = 6
    check(bad == sorted((o, n, enxio) for o, n in spans),
          f"{label}: manifest bad_ranges = the unmapped memory (image offset, length, ENXIO) (got {bad[:4]})")
    status = manifest.get("acquisition", {}).get("status")
    want_status = "completed_with_errors" if holes else "completed"
    check(status == want_status, f"{label}: manifest status {want_status} (got {status})")
    check(memory.get("banner") == banner, f"{label}: manifest banner = /proc/version (got {memory.get('banner')!r})")
    release = banner.split()[2]
    check(memory.get("kernel_release") == release, f"{label}: manifest kernel_release {release} (got {memory.get('kernel_release')})")
    image_facts = manifest.get("image", {})
    size = os.path.getsize(image)
    check(manifest.get("schema_version") == 6, f"{label}: manifest schema_version 6 (got {manifest.get('schema_version')})")
    check(image_facts.get("size_bytes") == size, f"{label}: manifest image size {image_facts.get('size_bytes')} = {size}")
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


def kcore_segments(head):
    """The physical segments of /proc/kcore from its first bytes (ELF header and program
    headers): [(first physical address, one past the last, file offset)] of every PT_LOAD whose
    p_paddr is set (the direct map of RAM and the kernel text; all ones for the rest)."""
    if head[:4] != b"\x7fELF" or head[4] != 2:
        raise SystemExit("memimage: not a 64-bit ELF header")
    phoff, = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", head, phoff + i * phentsize)
        if p_type == 1 and p_paddr != 2**64 - 1:
            segments.append((p_paddr, p_paddr + p_filesz, p_offset))
    return sorted(segments)


def kcore_holes(want, segments):
    """The parts of the System RAM ranges WANT (end inclusive) that no kcore segment maps, as
    (start, end exclusive): kcore maps whole pages only, so a range ending mid-page (the first of
    a q35 guest: 0x1000-0x9fbff) has its partial last page here. A kcore reader can only
    zero-fill them and record them."""
    holes = []
    for start, end in want:
        at, stop = start, end + 1
        for seg_start, seg_end, _ in segments:
            if seg_end <= at:
                continue
            if seg_start >= stop:
                break
            if seg_start > at:
                holes.append((at, seg_start))
            at = min(seg_end, stop)
            if at == stop:
                break
        if at < stop:
            holes.append((at, stop))
    return holes


def read_holes(kcore_head, want):
    if not kcore_head:
        return []
    with open(kcore_head, "rb") as f:
        return kcore_holes(want, kcore_segments(f.read()))


def holes_cmd(args):
    with open(args.iomem) as f:
        want = ram_ranges(f.read())
    holes = read_holes(args.kcore_head, want)
    print(" ".join(f"{lo:#x}-{hi - 1:#x}" for lo, hi in holes))
    return 0


def kcore_script(args):
    """dd commands reading each System RAM range out of /proc/kcore: its PT_LOAD segments map
    physical addresses (p_paddr) onto file offsets; each byte comes from the first segment (by
    physical address) that maps it."""
    with open(args.kcore_head, "rb") as f:
        segments = kcore_segments(f.read())
    with open(args.iomem) as f:
        want = ram_ranges(f.read())
    print("set -e")
    print(f": > {args.out}")
    for start, end in want:
        # Holes (kcore_holes) are left out. The kernel's text segment maps physical pages the
        # direct map has too: each byte is read once.
        at = start
        for seg_start, seg_end, seg_offset in segments:
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


# The self-test's guest: two System RAM ranges (the first ending mid-page, as a q35 guest's
# does), a nested entry and reserved ranges around them that must not count; its /proc/kcore maps
# whole pages: the partial page 0x2000-0x2bff is in no segment. A vmalloc-like segment has no
# physical address; the kernel text maps pages of the second range again.
SELF_IOMEM = """00000000-00000fff : Reserved
00001000-00002bff : System RAM
00002c00-00002fff : Reserved
00010000-00017fff : System RAM
  00011000-00011fff : Kernel code
00018000-0001ffff : PCI Bus 0000:00
"""
SELF_SEGMENTS = [(0x1000, 0x1000, 0x10000), (2**64 - 1, 0x4000, 0x20000), (0x10000, 0x8000, 0x30000),
                 (0x11000, 0x1000, 0x40000)]
SELF_BANNER = "Linux version 6.1.0-selftest (memimage.py) #1 SMP PREEMPT_DYNAMIC"


def elf_head(segments):
    """An ELF64 header and PT_LOAD program headers: (p_paddr, size, p_offset) each."""
    head = bytearray(64 + 56 * len(segments))
    head[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", head, 0x20, 64)
    struct.pack_into("<HH", head, 0x36, 56, len(segments))
    for i, (paddr, size, offset) in enumerate(segments):
        struct.pack_into("<IIQQQQQQ", head, 64 + 56 * i, 1, 4, offset, 0xffff888000000000 + i, paddr, size, size, 0)
    return bytes(head)


def self_test(args):
    """Every check on made-up images: a correct one passes, and each kind of wrong image or
    manifest fails the check meant to catch it (and the run fails). Proves the checks can fail."""
    import contextlib
    import io
    import json
    import tempfile

    failures = []

    def expect(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    want = ram_ranges(SELF_IOMEM)
    holes = kcore_holes(want, kcore_segments(elf_head(SELF_SEGMENTS)))
    expect(holes == [(0x2000, 0x2c00)], f"self-test kcore holes: the partial page only (got {holes})")
    for segments, found in [([(0x1000, 0x2c00, 0), (0x10000, 0x8000, 0)], []),
                            ([(0x1000, 0x2c00, 0)], [(0x10000, 0x18000)]),
                            ([(0x1000, 0x1000, 0), (0x2800, 0x400, 0)], [(0x2000, 0x2800), (0x10000, 0x18000)]),
                            ([(0x10000, 0x4000, 0)], [(0x1000, 0x2c00), (0x14000, 0x18000)]),
                            ([(0x1000, 0x1800, 0), (0x11000, 0x20000, 0)], [(0x2800, 0x2c00), (0x10000, 0x11000)])]:
        got = kcore_holes(want, sorted((a, a + n, o) for a, n, o in segments))
        expect(got == found, f"self-test kcore holes of {[(hex(a), hex(n)) for a, n, _ in segments]}: {got}")
    # (name, ranges as written, banner planted, bytes in the holes, stray tail, manifest changes,
    #  the failing check's words)
    cases = [
        ("correct", want, True, False, b"", {}, None),
        ("a range's end one byte short", [(0x1000, 0x2bfe), want[1]], True, False, b"", {}, "same bounds"),
        ("the partial page left out", [(0x1000, 0x1fff), want[1]], True, False, b"", {}, "same bounds"),
        ("a range split in two headers", [want[0], (0x10000, 0x13fff), (0x14000, 0x17fff)], True, False, b"", {},
         "same bounds"),
        ("ranges in the other order", [want[1], want[0]], True, False, b"", {}, "same order"),
        ("a reserved range imaged too", [(0, 0xfff), *want], True, False, b"", {}, "no other"),
        ("a stray byte after the last range", want, True, False, b"\0", {}, "LiME v1 headers and their ranges"),
        ("no banner in the bytes", want, False, False, b"", {}, "banner"),
        ("bytes where kcore maps nothing", want, True, True, b"", {}, "zeros where"),
        ("manifest: source.kind disk", want, True, False, b"", {"kind": "disk"}, "source.kind"),
        ("manifest: ends inclusive", want, True, False, b"", {"end": -1}, "manifest ranges"),
        ("manifest: offsets of the bytes, not the headers", want, True, False, b"", {"offset": 32}, "image offsets"),
        ("manifest: the hole counted as read", want, True, False, b"", {"lost": 0}, "bytes_read"),
        ("manifest: the hole not recorded", want, True, False, b"", {"bad": []}, "bad_ranges"),
        ("manifest: status completed", want, True, False, b"", {"status": "completed"}, "status"),
        ("manifest: another banner", want, True, False, b"", {"banner": SELF_BANNER + " x"}, "manifest banner"),
        ("manifest: another image's sha256", want, True, False, b"", {"sha256": "0" * 64}, "sha256"),
        ("manifest: another image's size", want, True, False, b"", {"size": 1}, "image size"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, ranges, planted, filled, tail, change, catch in cases:
            image, manifest = os.path.join(tmp, "image.lime"), os.path.join(tmp, "manifest.json")
            body, offsets, bad = bytearray(), [], []
            for i, (start, end) in enumerate(ranges):
                offsets.append(len(body))
                body += HEADER.pack(LIME_MAGIC, 1, start, end, bytes(8))
                data = bytearray((start + j) % 251 or 1 for j in range(end - start + 1))
                if planted and i == len(ranges) - 1:
                    data[0x800:0x800 + len(SELF_BANNER)] = SELF_BANNER.encode()
                for lo, hi in holes:
                    if start <= lo <= end:
                        hi = min(hi, end + 1)
                        if not filled:
                            data[lo - start:hi - start] = bytes(hi - lo)
                        bad.append({"offset": len(body) + lo - start, "length": hi - lo, "errno": 6})
                body += data
            body += tail
            with open(image, "wb") as f:
                f.write(body)
            lost = {s: sum(hi - lo for lo, hi in holes if s <= lo <= e) for s, e in ranges}
            memory = {"reader": "kcore", "banner": change.get("banner", SELF_BANNER),
                      "kernel_release": "6.1.0-selftest",
                      "ranges": [{"start": s, "end": e + 1 + change.get("end", 0),
                                  "image_offset": o + change.get("offset", 0),
                                  "bytes_read": e + 1 - s - change.get("lost", lost[s])}
                                 for (s, e), o in zip(ranges, offsets)]}
            with open(manifest, "w") as f:
                json.dump({"schema_version": 6, "source": {"kind": change.get("kind", "memory"), "memory": memory},
                           "acquisition": {"status": change.get("status", "completed_with_errors")},
                           "bad_ranges": change.get("bad", bad),
                           "image": {"size_bytes": change.get("size", len(body)),
                                     "hashes": {"sha256": change.get("sha256", hashlib.sha256(body).hexdigest())}}}, f)
            check = Checks()
            with contextlib.redirect_stdout(io.StringIO()):
                inspect(check, name, image, want, SELF_BANNER, manifest, holes)
            caught = [f for f in check.failures if catch and catch in f]
            expect(not check.failures if catch is None else bool(caught),
                   f"self-test {name}: " + ("passes" if catch is None else f"fails '{caught[0] if caught else catch}'")
                   + ("" if (not check.failures if catch is None else caught) else f" (failed: {check.failures})"))
        # avml's way: the partial page and an all-zero stretch left out. --subset accepts it;
        # a header outside the ranges it does not.
        for name, ranges, subset_ok in [("avml-like", [(0x1000, 0x1fff), (0x10000, 0x13fff), (0x16000, 0x17fff)], True),
                                        ("avml-like with a reserved page", [(0, 0xfff), (0x10000, 0x17fff)], False)]:
            image = os.path.join(tmp, "subset.lime")
            with open(image, "wb") as f:
                for start, end in ranges:
                    data = bytearray(end - start + 1)
                    data[0x100:0x100 + len(SELF_BANNER)] = SELF_BANNER.encode()
                    f.write(HEADER.pack(LIME_MAGIC, 1, start, end, bytes(8)) + data)
            results = []
            for subset in (True, False):
                check = Checks()
                with contextlib.redirect_stdout(io.StringIO()):
                    inspect(check, name, image, want, SELF_BANNER, subset=subset)
                results.append(not check.failures)
            expect(results == [subset_ok, False], f"self-test {name}: --subset {'passes' if subset_ok else 'fails'}, "
                   f"the full check fails (got {results})")
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
    c.add_argument("--subset", action="store_true", help="headers inside the ranges suffice (avml)")
    c.add_argument("--kcore-head", help="the guest's /proc/kcore, first 64 KiB: what it does not map must be zeros, recorded")
    h = sub.add_parser("holes")
    h.add_argument("--iomem", required=True)
    h.add_argument("--kcore-head", required=True)
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
    return {"ram": ram, "self-test": self_test, "holes": holes_cmd,"check": check_image, "volatility": volatility, "get": get, "nothing-left": nothing_left,
            "kcore-script": kcore_script}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
