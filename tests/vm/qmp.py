#!/usr/bin/env python3
"""qmp: hot-plugs the suspect disk into the running lab guest through QEMU's QMP socket.

  qmp.py SOCKET hotplug --image FILE --serial SERIAL [--error-sector N [--errno E]]
  qmp.py SOCKET wait-ready [--timeout S]

hotplug: adds FILE as a raw block node, then an NVMe controller with that serial on the PCIe root
port `hp0` (q35 hot-plugs only into root ports that existed at boot). The guest's kernel names it
nvme0n1 and udev makes /dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_SERIAL: a serial `vol…` is how an EBS
volume shows up (QEMU cannot fake the model "Amazon Elastic Block Store", so the collector must
read the volume ID from the serial). With --error-sector, reads touching that 512-byte sector fail
in QEMU's blkdebug layer; QEMU's NVMe turns any such failure into "Unrecovered Read Error", which
the guest kernel reports to user space as ENODATA (61), not EIO. Prints the host's wall-clock time
(seconds since the epoch) at which device_add was acknowledged.

wait-ready: waits (bounded) until the socket accepts QMP: QEMU creates it a moment after start.
Exits 1 on a QMP error or a timeout, with the reason on stderr.
"""

import argparse
import json
import socket
import sys
import time


class Qmp:
    """One QMP session: capabilities negotiated, commands answered in order, events skipped."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command, **arguments):
        message = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.file.write(json.dumps(message) + "\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError(f"QMP closed the connection during {command}")
            reply = json.loads(line)
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {command} failed: {reply['error']}")
            return reply.get("return")


def hotplug(qmp, image, serial, error_sector, errno):
    node = {"driver": "file", "filename": image}
    if error_sector is not None:
        # blkdebug's "sector" matches any request that touches that 512-byte sector; once=false
        # keeps failing it, so the collector's retries fail too and the sector is zero-filled.
        node = {
            "driver": "blkdebug",
            "image": node,
            "inject-error": [
                {"event": "read_aio", "sector": error_sector, "errno": errno, "once": False}
            ],
        }
    qmp.execute("blockdev-add", driver="raw", **{"node-name": "suspect", "file": node})
    qmp.execute("device_add", driver="nvme", id="suspect-nvme", drive="suspect", serial=serial,
                bus="hp0")
    return time.time()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("socket")
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hotplug")
    h.add_argument("--image", required=True)
    h.add_argument("--serial", required=True)
    h.add_argument("--error-sector", type=int)
    h.add_argument("--errno", type=int, default=5)
    w = sub.add_parser("wait-ready")
    w.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()

    if args.command == "wait-ready":
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                Qmp(args.socket)
                return 0
            except OSError as e:
                if time.monotonic() > deadline:
                    print(f"qmp: {args.socket} not ready after {args.timeout} s: {e}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
    try:
        at = hotplug(Qmp(args.socket), args.image, args.serial, args.error_sector, args.errno)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"qmp: {e}", file=sys.stderr)
        return 1
    print(f"{at:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
