#!/usr/bin/env python3
"""qmp: drives the running lab guest: hot-plugs suspect disks through QEMU's QMP socket, and runs
commands in the guest through the QEMU guest agent (as SSM Run Command does on EC2).

  qmp.py SOCKET hotplug --image FILE --serial SERIAL [--port hpN] [--error-sector N [--errno E]]
  qmp.py SOCKET wait-ready [--timeout S]
  qmp.py GA_SOCKET exec [--timeout S] [--env K=V]... -- PROGRAM [ARG...]
  qmp.py GA_SOCKET start [--timeout S] [--env K=V]... -- PROGRAM [ARG...]
  qmp.py GA_SOCKET wait --pid PID [--timeout S]

hotplug: adds FILE as a raw block node, then an NVMe controller with that serial on the PCIe root
port PORT (default hp0; q35 hot-plugs only into root ports that existed at boot; one disk per port). The guest's kernel names it
nvme0n1 and udev makes /dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_SERIAL: a serial `vol…` is how an EBS
volume shows up (QEMU cannot fake the model "Amazon Elastic Block Store", so the collector must
read the volume ID from the serial). With --error-sector, reads touching that 512-byte sector fail
in QEMU's blkdebug layer; QEMU's NVMe turns any such failure into "Unrecovered Read Error", which
the guest kernel reports to user space as ENODATA (61), not EIO. Prints the host's wall-clock time
(seconds since the epoch) at which device_add was acknowledged.

wait-ready: waits (bounded) until the socket accepts QMP: QEMU creates it a moment after start.

exec: waits (bounded) for the guest agent (qemu-guest-agent in the guest, on the virtio-serial
port org.qemu.guest_agent.0), runs PROGRAM there as root with exactly the given environment (none
but PATH unless --env), waits for it to exit, copies its output to stdout and stderr, and exits
with its exit code (or 124 when it outlives --timeout; the guest process is then left running).

start: as exec, but prints the guest's PID of PROGRAM and returns at once (to signal it while it
runs, e.g. SIGTERM mid-capture); wait: waits for that PID as exec does, with its output and exit code.

Exits 1 on a QMP error or a timeout, with the reason on stderr.
"""

import argparse
import base64
import itertools
import json
import socket
import sys
import time

# The guest agent's default PATH is the agent's own; a Run Command script expects a root shell's.
GUEST_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def request(file, peer, command, arguments, answers):
    """Sends one command on a QMP-style JSON line protocol and returns the `return` of the first
    reply for which `answers(reply)` holds (QMP interleaves events; a guest agent may answer an
    older guest-sync first). Raises OSError when the peer hangs up, RuntimeError on an error."""
    message = {"execute": command}
    if arguments:
        message["arguments"] = arguments
    file.write(json.dumps(message) + "\n")
    file.flush()
    while True:
        line = file.readline()
        if not line:
            raise OSError(f"{peer} closed the connection during {command}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{peer} {command} failed: {reply['error']}")
        if answers(reply):
            return reply.get("return")


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
        return request(self.file, "QMP", command, arguments, lambda reply: "event" not in reply)


class GuestAgent:
    """One guest agent session. The agent speaks QMP's JSON without a greeting or capabilities;
    until it runs in the guest, nothing answers, and a request written before it started may be
    answered late: guest-sync with a fresh ID discards whatever came before."""

    ids = itertools.count(int(time.time()) % 100000 * 1000)

    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(2.0)
                self.sock.connect(path)
                self.file = self.sock.makefile("rw")
                sync = next(self.ids)
                if self.execute("guest-sync", id=sync) == sync:
                    self.sock.settimeout(30.0)
                    return
            except (OSError, ValueError):
                self.sock.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the guest agent on {path} did not answer")
            time.sleep(0.5)

    def execute(self, command, **arguments):
        return request(self.file, "the guest agent", command, arguments,
                       lambda reply: command != "guest-sync" or reply.get("return") == arguments.get("id"))


def guest_start(path, argv, env, timeout):
    """Starts ARGV in the guest; returns its PID there without waiting for it."""
    agent = GuestAgent(path, time.monotonic() + timeout)
    return agent.execute("guest-exec", path=argv[0], arg=argv[1:], env=[GUEST_PATH, *env],
                         **{"capture-output": True})["pid"]


def guest_exec(path, argv, env, timeout):
    deadline = time.monotonic() + timeout
    return guest_wait(path, guest_start(path, argv, env, timeout), deadline, argv[0])


def guest_wait(path, pid, deadline, what):
    """Waits (until DEADLINE) for guest process PID; copies its output, returns its exit code."""
    agent = GuestAgent(path, deadline)
    while True:
        status = agent.execute("guest-exec-status", pid=pid)
        if status.get("exited"):
            break
        if time.monotonic() > deadline:
            print(f"qmp: {what} still runs in the guest", file=sys.stderr)
            return 124
        time.sleep(0.2)
    for key, stream in (("out-data", sys.stdout), ("err-data", sys.stderr)):
        data = base64.b64decode(status.get(key, ""))
        stream.buffer.write(data)
        stream.flush()
    if status.get("signal") is not None:
        print(f"qmp: {what} was killed by signal {status['signal']}", file=sys.stderr)
        return 128 + status["signal"]
    return status.get("exitcode", 1)


def hotplug(qmp, image, serial, port, error_sector, errno):
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
    node_name = f"suspect-{port}"
    qmp.execute("blockdev-add", driver="raw", **{"node-name": node_name, "file": node})
    qmp.execute("device_add", driver="nvme", id=f"nvme-{port}", drive=node_name, serial=serial,
                bus=port)
    return time.time()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("socket")
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hotplug")
    h.add_argument("--image", required=True)
    h.add_argument("--serial", required=True)
    h.add_argument("--port", default="hp0")
    h.add_argument("--error-sector", type=int)
    h.add_argument("--errno", type=int, default=5)
    w = sub.add_parser("wait-ready")
    w.add_argument("--timeout", type=float, default=10.0)
    e = sub.add_parser("exec")
    e.add_argument("--timeout", type=float, default=60.0)
    e.add_argument("--env", action="append", default=[])
    e.add_argument("argv", nargs="+")
    s = sub.add_parser("start")
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--env", action="append", default=[])
    s.add_argument("argv", nargs="+")
    gw = sub.add_parser("wait")
    gw.add_argument("--pid", type=int, required=True)
    gw.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()

    if args.command in ("exec", "start", "wait"):
        try:
            if args.command == "start":
                print(guest_start(args.socket, args.argv, args.env, args.timeout))
                return 0
            if args.command == "wait":
                return guest_wait(args.socket, args.pid, time.monotonic() + args.timeout, f"PID {args.pid}")
            return guest_exec(args.socket, args.argv, args.env, args.timeout)
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            print(f"qmp: {err}", file=sys.stderr)
            return 1

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
        at = hotplug(Qmp(args.socket), args.image, args.serial, args.port, args.error_sector,
                     args.errno)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"qmp: {e}", file=sys.stderr)
        return 1
    print(f"{at:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
