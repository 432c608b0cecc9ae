#!/usr/bin/env python3
"""faultfs: a tiny read-only FUSE filesystem that exposes one file, MOUNTPOINT/disk.img,
backed by a real file, with injectable faults:

  --bad START-END     reads overlapping [START, END) fail with EIO (repeatable;
                      decimal or K/M/G suffixes, binary: 1M = 1048576)
  --delay-ms N        sleep N ms in every read request (a lazily-fetched EBS volume)
  --die-after-bytes N after N bytes were served, the process exits abruptly: the
                      kernel aborts the connection, pending and later reads fail
                      (ENOTCONN on the file, EIO through a loop device)

Put a loop device on top to get a block device with real kernel EIO on exactly the
512-byte sectors that overlap the bad ranges:

  faultfs.py BACKING MNT --bad 1048576-1049088 &    # prints "ready" once mounted
  LOOP=$(losetup -f --show -r --direct-io=on MNT/disk.img)
  ...
  losetup -d "$LOOP"; kill %1  (or: fusermount -u MNT / umount MNT)

Runs in the foreground, multi-threaded (requests overlap when the kernel sends
several). Every file handle is opened with FUSE direct_io, so the page cache is
bypassed and each read request reaches this process with the caller's own offset and
size. Needs root (or user_allow_other) for the loop device; Python module `fusepy`
(pip) or Debian's python3-fusepy, and libfuse2.
"""

import argparse
import errno
import os
import re
import stat
import sys
import threading
import time

try:  # Debian's python3-fusepy installs the module as `fusepy`
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:  # pip's fusepy installs it as `fuse`
    from fuse import FUSE, FuseOSError, Operations

FILE_NAME = "disk.img"
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(m.group(1)) * _SUFFIX[m.group(2).upper()]


def parse_range(text):
    parts = text.split("-")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"not a START-END range: {text!r}")
    start, end = parse_size(parts[0]), parse_size(parts[1])
    if end <= start:
        raise argparse.ArgumentTypeError(f"empty range (END is exclusive): {text!r}")
    return start, end


def parse_errno(text):
    if text.isdigit():
        return int(text)
    code = getattr(errno, text.upper(), None)
    if not isinstance(code, int):
        raise argparse.ArgumentTypeError(f"unknown errno: {text!r}")
    return code


class FaultFS(Operations):
    def __init__(self, backing, bad, delay_s, die_after, err, ready_fd, stats=False):
        self.fd = os.open(backing, os.O_RDONLY)
        st = os.fstat(self.fd)
        self.size = st.st_size
        self.mtime = st.st_mtime
        self.bad = sorted(bad)
        self.delay_s = delay_s
        self.die_after = die_after
        self.err = err
        self.ready_fd = ready_fd
        self._mutex = threading.Lock()
        self.served = 0
        self.t0 = time.time()
        self.stats = stats
        self.requests = 0
        self.inflight = 0
        self.max_inflight = 0
        self.sizes = {}

    # --- metadata -------------------------------------------------------------------
    def init(self, path):
        # Called once the kernel's INIT arrives, i.e. after mount(2) succeeded. Any access
        # to the mount waits for our INIT reply, so "ready" is safe to act on.
        os.write(self.ready_fd, b"ready\n")

    def getattr(self, path, fh=None):
        base = dict(st_uid=os.getuid(), st_gid=os.getgid(), st_atime=self.t0,
                    st_mtime=self.mtime, st_ctime=self.mtime)
        if path == "/":
            return dict(base, st_mode=stat.S_IFDIR | 0o555, st_nlink=2)
        if path == "/" + FILE_NAME:
            return dict(base, st_mode=stat.S_IFREG | 0o444, st_nlink=1,
                        st_size=self.size, st_blocks=(self.size + 511) // 512,
                        st_blksize=4096)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        if path != "/":
            raise FuseOSError(errno.ENOTDIR)
        return [".", "..", FILE_NAME]

    def statfs(self, path):
        return dict(f_bsize=4096, f_frsize=512, f_blocks=(self.size + 511) // 512,
                    f_bfree=0, f_bavail=0, f_files=1, f_ffree=0, f_namemax=255)

    # --- the file -------------------------------------------------------------------
    def open(self, path, fi):
        if path != "/" + FILE_NAME:
            raise FuseOSError(errno.ENOENT)
        if fi.flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise FuseOSError(errno.EROFS)
        fi.direct_io = 1  # no page cache: exact offsets and sizes reach read()
        fi.keep_cache = 0
        fi.fh = 0
        return 0

    def release(self, path, fi):
        return 0

    def destroy(self, path):
        if self.stats:
            sizes = " ".join(f"{k}x{v}" for k, v in sorted(self.sizes.items()))
            os.write(2, (f"faultfs: stats requests={self.requests} served_bytes={self.served} "
                         f"max_inflight={self.max_inflight} sizes={sizes}\n").encode())

    def read(self, path, size, offset, fi):
        if self.stats:
            with self._mutex:
                self.requests += 1
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
                self.sizes[size] = self.sizes.get(size, 0) + 1
        try:
            return self._read(size, offset)
        finally:
            if self.stats:
                with self._mutex:
                    self.inflight -= 1

    def _read(self, size, offset):
        if self.delay_s:
            time.sleep(self.delay_s)
        if offset >= self.size or size <= 0:
            return b""
        size = min(size, self.size - offset)
        end = offset + size
        for b_start, b_end in self.bad:
            if offset < b_end and end > b_start:
                raise FuseOSError(self.err)
        with self._mutex:
            if self.die_after is not None and self.served + size > self.die_after:
                os.write(2, b"faultfs: --die-after-bytes reached, exiting abruptly\n")
                os._exit(3)  # closes /dev/fuse: the kernel aborts the connection
            self.served += size
        return os.pread(self.fd, size, offset)

    def write(self, path, data, offset, fi):
        raise FuseOSError(errno.EROFS)

    def truncate(self, path, length, fh=None):
        raise FuseOSError(errno.EROFS)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("backing", help="real file whose bytes disk.img shows")
    p.add_argument("mountpoint", help="existing empty directory")
    p.add_argument("--bad", action="append", type=parse_range, default=[],
                   metavar="START-END", help="byte range (END exclusive) whose reads fail")
    p.add_argument("--delay-ms", type=float, default=0.0, help="sleep per read request")
    p.add_argument("--die-after-bytes", type=parse_size, default=None, metavar="N",
                   help="exit abruptly instead of serving byte N+1")
    p.add_argument("--errno", type=parse_errno, default=errno.EIO, dest="err",
                   help="error for bad ranges (name or number; default EIO). Through a "
                        "loop device the reader sees EIO whatever this is")
    p.add_argument("--allow-other", action="store_true",
                   help="let other users (not only the mounting one) open the file")
    p.add_argument("--stats", action="store_true",
                   help="on unmount, print to stderr: read requests, bytes served, the "
                        "most requests in progress at once, and request sizes")
    p.add_argument("--debug", action="store_true", help="libfuse debug output on stderr")
    a = p.parse_args()

    if not os.path.isdir(a.mountpoint):
        p.error(f"mountpoint {a.mountpoint!r} is not a directory")
    ready_fd = os.dup(sys.stdout.fileno())
    ops = FaultFS(a.backing, a.bad, a.delay_ms / 1000.0, a.die_after_bytes, a.err, ready_fd,
                  a.stats)
    opts = dict(foreground=True, nothreads=False, ro=True, fsname="faultfs",
                subtype="faultfs", debug=a.debug)
    if a.allow_other:
        opts["allow_other"] = True
    # Returns after unmount (fusermount -u / umount) or SIGINT/SIGTERM (which unmount).
    FUSE(ops, a.mountpoint, raw_fi=True, **opts)


if __name__ == "__main__":
    main()
