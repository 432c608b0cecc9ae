#!/usr/bin/env python3
"""evidence: the host side of the VM lab's checks, against moto on 127.0.0.1 (boto3 comes with moto).

  evidence.py --endpoint URL wait-log --group G --contains TEXT --timeout S
      Waits (bounded) until an event of log group G contains TEXT; prints its timestamp (ms since
      the epoch, the guest's clock). Exit 1 on timeout.

  evidence.py watch-console --file FILE --contains TEXT --timeout S
      Follows FILE (the guest's serial console) and prints the host's wall-clock time at which a
      line containing TEXT appeared in it. The guest's clock comes from the emulated RTC, which
      has one-second resolution, so event timestamps alone cannot time sub-second latencies.

  evidence.py error-sector --disk FILE [--sector N]
      Prints the sector the bad-sector scenario fails: N, or the first sector at or after 70001
      (≈ 34 MiB in, past what udev's probe reads) whose 512 bytes in FILE are not all zeros. A
      given N that is all zeros gets a marker written into FILE, so that the zero-filled sector
      the scenario expects always differs from the original.

  evidence.py --endpoint URL verify --bucket B --prefix P --incident I --name NAME --disk FILE
              --image FILE --volume-id vol-… --imds-log FILE [--bad-sector N --errno E]
              --started T --ready T --hotplugged T --detected T --exited T
      Checks the evidence and the reports after the guest powered off; prints the timings. FILE
      --image is the image object as downloaded (curl) from moto. Exit 1 with every failed check.
"""

import argparse
import hashlib
import json
import sys
import time

import boto3

SECTOR = 512
CAPTURE_EVENTS = ("disk_detected", "job_started", "job_finished", "agent_stopping")


def logs(endpoint):
    return boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def events(client, group):
    """Every event of the group, oldest first; [] while the group does not exist yet."""
    out, token = [], None
    while True:
        kwargs = {"logGroupName": group}
        if token:
            kwargs["nextToken"] = token
        try:
            page = client.filter_log_events(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            return []
        out.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return sorted(out, key=lambda e: e["timestamp"])


def wait_log(args):
    client = logs(args.endpoint)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        for e in events(client, args.group):
            if args.contains in e["message"]:
                print(e["timestamp"])
                return 0
        time.sleep(0.25)
    print(f"evidence: no event containing {args.contains!r} in {args.group} after {args.timeout} s",
          file=sys.stderr)
    return 1


def watch_console(args):
    deadline = time.monotonic() + args.timeout
    seen = b""
    needle = args.contains.encode()
    while time.monotonic() < deadline:
        try:
            with open(args.file, "rb") as f:
                f.seek(len(seen))
                seen += f.read()
        except FileNotFoundError:
            pass
        if needle in seen:
            print(f"{time.time():.3f}")
            return 0
        time.sleep(0.02)
    print(f"evidence: {args.contains!r} not in {args.file} after {args.timeout} s", file=sys.stderr)
    return 1


def error_sector(args):
    with open(args.disk, "r+b") as f:
        if args.sector is not None:
            f.seek(args.sector * SECTOR)
            if len(f.read(SECTOR)) < SECTOR:
                print(f"evidence: sector {args.sector} is past the end of {args.disk}", file=sys.stderr)
                return 1
            f.seek(args.sector * SECTOR)
            if not f.read(SECTOR).strip(b"\0"):
                marker = b"forensic-collector VM lab: bad-sector marker "
                f.seek(args.sector * SECTOR)
                f.write((marker * (SECTOR // len(marker) + 1))[:SECTOR])
            print(args.sector)
            return 0
        f.seek(70001 * SECTOR)
        sector = 70001
        while True:
            block = f.read(SECTOR)
            if len(block) < SECTOR:
                print("evidence: no non-zero sector after 70001", file=sys.stderr)
                return 1
            if block.strip(b"\0"):
                print(sector)
                return 0
            sector += 1


def verify(args):
    failures = []

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    base = "/".join(p for p in (args.prefix, args.incident, "disk_evidence") if p)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=args.bucket, Prefix=base + "/").get("Contents", [])]
    print(f"objects under s3://{args.bucket}/{base}/: {', '.join(k[len(base) + 1:] for k in keys)}")
    manifest_key = f"{base}/{args.name}.manifest.json"
    check(manifest_key in keys, f"manifest s3://{args.bucket}/{manifest_key} exists")
    if manifest_key not in keys:
        return finish(failures)
    manifest = json.loads(s3.get_object(Bucket=args.bucket, Key=manifest_key)["Body"].read())

    # The image, byte for byte: the disk, with zeros exactly at the injected bad sector.
    with open(args.disk, "rb") as f:
        expected = bytearray(f.read())
    if args.bad_sector is not None:
        at = args.bad_sector * SECTOR
        check(expected[at:at + SECTOR].strip(b"\0") != b"", f"the disk's sector {args.bad_sector} is not zeros")
        expected[at:at + SECTOR] = bytes(SECTOR)
    with open(args.image, "rb") as f:
        got = f.read()
    same = got == expected
    if not same:
        diff = [i // SECTOR for i in range(0, min(len(got), len(expected)), SECTOR)
                if got[i:i + SECTOR] != expected[i:i + SECTOR]]
        print(f"      image {len(got)} bytes, expected {len(expected)}; differing sectors: {diff[:10]}")
    check(same, "image object equals the disk" +
          (f" with sector {args.bad_sector} zero-filled" if args.bad_sector is not None else "") + " byte for byte")
    sha = hashlib.sha256(got).hexdigest()
    check(manifest["image"]["hashes"].get("sha256") == sha, "manifest sha256 = sha256 of the image object")

    sidecar_key = f"{base}/{args.name}.image.dd.sha256"
    sidecar = s3.get_object(Bucket=args.bucket, Key=sidecar_key)["Body"].read().decode() if sidecar_key in keys else ""
    check(sidecar == f"{sha}  {args.name}.image.dd\n" or sidecar == f"{sha}  {args.name}.image.dd",
          f"{args.name}.image.dd.sha256 reads '<sha256>  {args.name}.image.dd' (sha256sum -c)")
    log_key = f"{base}/{args.name}.capture.log"
    check(log_key in keys and s3.head_object(Bucket=args.bucket, Key=log_key)["ContentLength"] > 0,
          f"{args.name}.capture.log is stored and not empty")

    identity = manifest["source"]["identity"]
    print(f"      source: {manifest['source']['path']} identity {json.dumps(identity)}")
    check(identity.get("ebs_volume_id") == args.volume_id,
          f"source identity ebs_volume_id = {args.volume_id} (from the NVMe serial)")
    check(manifest["case"]["evidence_name"] == args.name, f"evidence named {args.name} (IMAGE_NAME)")

    status = manifest["acquisition"]["status"]
    bad = manifest.get("bad_ranges", [])
    if args.bad_sector is None:
        check(status == "completed" and not bad, f"status completed, no bad ranges (got {status}, {bad})")
    else:
        want = {"first_sector": args.bad_sector, "sector_count": 1, "sector_size": SECTOR,
                "offset": args.bad_sector * SECTOR, "length": SECTOR, "errno": args.errno}
        check(status == "completed_with_errors", f"status completed_with_errors (got {status})")
        check(bad == [want], f"bad_ranges = [{want}] (got {bad})")

    # The job context came over IMDSv2: a token first, then only requests that carry it.
    with open(args.imds_log) as f:
        requests = [json.loads(line) for line in f if line.strip()]
    token_first = bool(requests) and requests[0]["method"] == "PUT" and requests[0]["path"] == "/latest/api/token"
    check(token_first and all(r["token"] == "valid" for r in requests[1:] if r["method"] == "GET")
          and any(r["path"] == "/latest/user-data" and r["status"] == 200 for r in requests),
          f"user data read over IMDSv2 (token, then only tokened GETs): {len(requests)} requests")

    # The reports.
    capture = events(logs(args.endpoint), "ForensicDiskCapture")
    parsed = []
    for e in capture:
        try:
            parsed.append((e["timestamp"], json.loads(e["message"])))
        except ValueError:
            pass
    names = [m.get("event") for _, m in parsed]
    print(f"      capture events: {', '.join(str(n) for n in names)}")
    for name in CAPTURE_EVENTS:
        check(name in names, f"{name} event in ForensicDiskCapture")
    finished = [m for _, m in parsed if m.get("event") == "job_finished"]
    if finished:
        f = finished[0]
        want_status, want_exit = ("completed", 0) if args.bad_sector is None else ("completed_with_errors", 3)
        check(f.get("status") == want_status and f.get("exit_code") == want_exit,
              f"job_finished: status {want_status}, exit_code {want_exit} "
              f"(got {f.get('status')}, {f.get('exit_code')})")
        print(f"      job: {f.get('bytes')} bytes in {f.get('duration_seconds')} s ({f.get('mb_per_s')} MB/s)")
    detected = [(t, m) for t, m in parsed if m.get("event") == "disk_detected"]

    print("timings (host clock):")
    print(f"  QEMU start → readiness read back from CloudWatch: {args.ready - args.started:.1f} s")
    detection = f"{args.detected - args.hotplugged:.2f} s" if args.detected else "not seen on the console"
    ms = detected[0][1].get("detection_ms") if detected else None
    print(f"  hot-plug (QMP device_add) → daemon logs the disk detected: {detection} "
          f"(of which first udev link → settled disk, the daemon's detection_ms: {ms} ms)")
    print(f"  hot-plug → QEMU exit (capture, upload, reports, poweroff): {args.exited - args.hotplugged:.1f} s")
    print(f"  whole run (QEMU start → exit): {args.exited - args.started:.1f} s")
    return finish(failures)


def finish(failures):
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", help="moto's URL (all but watch-console)")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wait-log")
    w.add_argument("--group", required=True)
    w.add_argument("--contains", required=True)
    w.add_argument("--timeout", type=float, required=True)
    c = sub.add_parser("watch-console")
    c.add_argument("--file", required=True)
    c.add_argument("--contains", required=True)
    c.add_argument("--timeout", type=float, required=True)
    d = sub.add_parser("error-sector")
    d.add_argument("--disk", required=True)
    d.add_argument("--sector", type=int)
    v = sub.add_parser("verify")
    for name in ("bucket", "prefix", "incident", "name", "disk", "image", "volume-id", "imds-log"):
        v.add_argument(f"--{name}", required=True)
    v.add_argument("--bad-sector", type=int)
    v.add_argument("--errno", type=int, default=61)
    for name in ("started", "ready", "hotplugged", "exited"):
        v.add_argument(f"--{name}", type=float, required=True)
    v.add_argument("--detected", type=float, help="0 when the console never showed it")
    args = p.parse_args()
    return {"wait-log": wait_log, "watch-console": watch_console, "error-sector": error_sector,
            "verify": verify}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
