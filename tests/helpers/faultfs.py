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
  losetup -d "$LOOP"; kill $!          # SIGTERM/SIGINT unmount cleanly

Runs in the foreground, multi-threaded. Every file handle is opened with FUSE
direct_io, so the page cache is bypassed and each read request reaches this process
with the caller's own offset and size (split at --max-read).

Uses libfuse 3 through the `mfusepy` module (pip). libfuse 3 negotiates async direct
I/O with the kernel, which is what lets a loop device with --direct-io=on keep several
requests in flight here; with libfuse 2 (--libfuse 2) a loop device on top sends one
request at a time whatever its queue depth. Falls back to the `fusepy` module
(libfuse 2 only) when mfusepy is missing.
"""

import argparse
import errno
import os
import re
import stat
import sys
import threading
import time

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


def load_fuse(libfuse):
    """Returns (FUSE, FuseOSError, Operations, major version) for libfuse 2, 3 or auto (0)."""
    if "FUSE_LIBRARY_PATH" not in os.environ and libfuse:
        os.environ["FUSE_LIBRARY_NAME"] = "fuse3" if libfuse == 3 else "fuse"
    elif "FUSE_LIBRARY_PATH" not in os.environ:
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    try:
        import mfusepy as m
        major = m.fuse_version_major
    except ImportError:
        if libfuse == 3:
            sys.exit("faultfs: libfuse 3 needs the mfusepy module (pip install mfusepy; "
                     "tests/helpers/setup-deps.sh)")
        try:  # Debian's python3-fusepy installs the module as `fusepy`, pip's as `fuse`
            import fusepy as m
        except ImportError:
            import fuse as m
        major = 2
        if not libfuse:
            sys.stderr.write("faultfs: mfusepy missing, using fusepy with libfuse 2: a loop "
                             "device on top will send one request at a time\n")
    except OSError as e:  # mfusepy found no such library
        sys.exit(f"faultfs: {e} (apt-get install fuse3 libfuse2; tests/helpers/setup-deps.sh)")
    if libfuse and major != libfuse:
        sys.exit(f"faultfs: wanted libfuse {libfuse}, loaded libfuse {major}")
    return m.FUSE, m.FuseOSError, m.Operations, major


def make_fs(FuseOSError, Operations):
    class FaultFS(Operations):
        def __init__(self, backing, bad, delay_s, die_after, err, ready_fd, stats,
                     max_background=None, max_read=None):
            self._fd = os.open(backing, os.O_RDONLY)
            st = os.fstat(self._fd)
            self._size = st.st_size
            self._mtime = st.st_mtime_ns
            self._bad = sorted(bad)
            self._delay_s = delay_s
            self._die_after = die_after
            self._err = err
            self._ready_fd = ready_fd
            self._stats = stats
            self._max_background = max_background
            self._max_read = max_read
            self._mutex = threading.Lock()
            self._served = 0
            self._requests = 0
            self._inflight = 0
            self._max_inflight = 0
            self._sizes = {}
            self._t0 = time.time_ns()

        # --- metadata ---------------------------------------------------------------
        use_ns = True  # getattr times in integer nanoseconds

        def init(self, path):
            # Called when the kernel's INIT arrives, i.e. after mount(2) succeeded. Any
            # access to the mount waits for our INIT reply, so "ready" is safe to act on.
            os.write(self._ready_fd, b"ready\n")

        def init_with_config(self, conn, config):
            # mfusepy calls this instead of init(); fusepy never does.
            if conn is not None and self._max_background:
                # How many requests the kernel keeps outstanding for async direct I/O.
                conn.max_background = self._max_background
                conn.congestion_threshold = self._max_background
            if conn is not None and self._max_read:
                conn.max_read = self._max_read  # must match the max_read mount option
            self.init("/")

        def destroy(self, path):
            if self._stats:
                sizes = " ".join(f"{k}x{v}" for k, v in sorted(self._sizes.items()))
                os.write(2, (f"faultfs: stats requests={self._requests} "
                             f"served_bytes={self._served} max_inflight={self._max_inflight} "
                             f"sizes={sizes}\n").encode())

        def getattr(self, path, fh=None):
            base = {"st_uid": os.getuid(), "st_gid": os.getgid(), "st_atime": self._t0,
                    "st_mtime": self._mtime, "st_ctime": self._mtime}
            if path == "/":
                return dict(base, st_mode=stat.S_IFDIR | 0o555, st_nlink=2)
            if path == "/" + FILE_NAME:
                return dict(base, st_mode=stat.S_IFREG | 0o444, st_nlink=1,
                            st_size=self._size, st_blocks=(self._size + 511) // 512,
                            st_blksize=4096)
            raise FuseOSError(errno.ENOENT)

        def readdir(self, path, fh):
            if path != "/":
                raise FuseOSError(errno.ENOTDIR)
            return [".", "..", FILE_NAME]

        def statfs(self, path):
            return {"f_bsize": 4096, "f_frsize": 512, "f_blocks": (self._size + 511) // 512,
                    "f_bfree": 0, "f_bavail": 0, "f_files": 1, "f_ffree": 0, "f_namemax": 255}

        # --- the file ---------------------------------------------------------------
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

        def read(self, path, size, offset, fi):
            if self._stats:
                with self._mutex:
                    self._requests += 1
                    self._inflight += 1
                    self._max_inflight = max(self._max_inflight, self._inflight)
                    self._sizes[size] = self._sizes.get(size, 0) + 1
            try:
                return self._read(size, offset)
            finally:
                if self._stats:
                    with self._mutex:
                        self._inflight -= 1

        def _read(self, size, offset):
            if self._delay_s:
                time.sleep(self._delay_s)
            if offset >= self._size or size <= 0:
                return b""
            size = min(size, self._size - offset)
            end = offset + size
            for b_start, b_end in self._bad:
                if offset < b_end and end > b_start:
                    raise FuseOSError(self._err)
            with self._mutex:
                if self._die_after is not None and self._served + size > self._die_after:
                    os.write(2, b"faultfs: --die-after-bytes reached, exiting abruptly\n")
                    os._exit(3)  # closes /dev/fuse: the kernel aborts the connection
                self._served += size
            return os.pread(self._fd, size, offset)

        def write(self, path, data, offset, fi):
            raise FuseOSError(errno.EROFS)

        def truncate(self, path, length, fh=None):
            raise FuseOSError(errno.EROFS)

    return FaultFS


def main():
    p = argparse.ArgumentParser(usage="%(prog)s BACKING_FILE MOUNTPOINT [options]",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("backing", help="real file whose bytes disk.img shows")
    p.add_argument("mountpoint", help="existing empty directory")
    p.add_argument("--bad", action="append", type=parse_range, default=[],
                   metavar="START-END", help="byte range (END exclusive) whose reads fail")
    p.add_argument("--delay-ms", type=float, default=0.0, help="sleep per read request")
    p.add_argument("--die-after-bytes", type=parse_size, default=None, metavar="N",
                   help="exit abruptly instead of serving byte N+1")
    p.add_argument("--errno", type=parse_errno, default=errno.EIO, dest="err",
                   help="error for bad ranges (name or number; default EIO). A loop "
                        "device passes on EIO, ENODATA, EILSEQ, EREMOTEIO, ETIMEDOUT, "
                        "ENOLINK as they are and turns e.g. EPERM, EACCES into EIO")
    p.add_argument("--max-read", type=parse_size, default=None, metavar="BYTES",
                   help="largest read request the kernel sends (mount option max_read); "
                        "default: the library's (1 MiB with libfuse 3, 128 KiB with 2)")
    p.add_argument("--threads", type=int, default=32,
                   help="libfuse 3: most requests served at once (max_threads and the "
                        "kernel's max_background); default 32")
    p.add_argument("--libfuse", type=int, choices=(0, 2, 3), default=0,
                   help="3: mfusepy + libfuse 3; 2: libfuse 2 (mfusepy or fusepy); "
                        "0 (default): 3 if mfusepy is installed, else 2")
    p.add_argument("--allow-other", action="store_true",
                   help="let other users (not only the mounting one) open the file")
    p.add_argument("--stats", action="store_true",
                   help="on unmount, print to stderr: read requests, bytes served, the "
                        "most requests in progress at once, and request sizes")
    p.add_argument("--debug", action="store_true", help="libfuse debug output on stderr")
    a = p.parse_args()

    if not os.path.isdir(a.mountpoint):
        p.error(f"mountpoint {a.mountpoint!r} is not a directory")
    if not os.path.isfile(a.backing):
        p.error(f"backing file {a.backing!r} is not a regular file")
    FUSE, FuseOSError, Operations, major = load_fuse(a.libfuse)
    FaultFS = make_fs(FuseOSError, Operations)
    ready_fd = os.dup(sys.stdout.fileno())
    ops = FaultFS(a.backing, a.bad, a.delay_ms / 1000.0, a.die_after_bytes, a.err,
                  ready_fd, a.stats, a.threads if major == 3 else None, a.max_read)
    opts = {"foreground": True, "nothreads": False, "ro": True, "fsname": "faultfs",
            "subtype": "faultfs", "debug": a.debug}
    if a.allow_other:
        opts["allow_other"] = True
    if a.max_read:
        opts["max_read"] = a.max_read
    if major == 3:
        opts["max_threads"] = a.threads
        opts["max_idle_threads"] = a.threads
    # Returns after unmount (fusermount -u / umount) or SIGINT/SIGTERM (which unmount).
    try:
        FUSE(ops, a.mountpoint, raw_fi=True, **opts)
    except RuntimeError as e:
        status = str(e)
        if status == "8":  # libfuse 3's fuse_main: the loop was ended by a signal
            return 0
        sys.stderr.write(f"faultfs: libfuse failed (fuse_main status {status})\n")
        return int(status) if status.isdigit() else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

