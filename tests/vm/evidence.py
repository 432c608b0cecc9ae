#!/usr/bin/env python3
"""evidence: the host side of the VM lab's checks, against moto on 127.0.0.1 (boto3 comes with moto).

  evidence.py --endpoint URL wait-log --group G [--stream S] --contains TEXT --timeout S
      Waits (bounded) until an event of log group G (stream S) contains TEXT; prints its timestamp (ms since
      the epoch, the guest's clock). Exit 1 on timeout.

  evidence.py watch-console --file FILE --contains TEXT [--count N] --timeout S
      Follows FILE (the guest's serial console) and prints the host's wall-clock time at which a
      line containing TEXT appeared in it (the N-th such line). The guest's clock comes from the emulated RTC, which
      has one-second resolution, so event timestamps alone cannot time sub-second latencies.

  evidence.py error-sector --disk FILE [--sector N]
      Prints the sector the bad-sector scenario fails: N, or the first sector at or after 70001
      (≈ 34 MiB in, past what udev's probe reads) whose 512 bytes in FILE are not all zeros. A
      given N that is all zeros gets a marker written into FILE, so that the zero-filled sector
      the scenario expects always differs from the original.

  evidence.py --endpoint URL wait-event --stream S --event E [--volume-id vol-…] --timeout S
      Waits (bounded) until ForensicDiskCapture's stream S holds a JSON event E (for that volume).
      Every command reading the daemon's events takes --stream: its instance ID, one per boot.

  evidence.py --endpoint URL wait-upload --bucket B --timeout S
      Waits (bounded) until B has an open multipart upload with at least one part uploaded.

  evidence.py --endpoint URL verify --bucket B --prefix P --incident I --imds-log FILE --stream S
              --volume NAME:DISK:VOLUME_ID[:BAD_SECTOR] [--volume …]
      After the daemon's boot: each volume's evidence (image byte for byte against DISK, zeros
      exactly at BAD_SECTOR, hashes, sidecar, log, volume ID from the serial, status), the IMDSv2
      token flow, each job's events, and the agent's stop. Exit 1 with every failed check.

  evidence.py --endpoint URL check-stopped --bucket B --prefix P --incident I --name NAME
              --volume-id vol-… --stream S
      After `systemctl stop` mid-capture: no object under the incident, no open multipart upload,
      job_started (evidence NAME) then job_failed (exit code 130) for the volume, no
      job_finished, agent_stopping "interrupted".

  evidence.py ssm-script --doc FILE --binary PATH NAME=VALUE...
      Prints the SSM Command document's script as Run Command would run it: each {{ NAME }}
      replaced by VALUE as text, /usr/bin/forensic-collector by PATH.

  evidence.py --endpoint URL check-result --bucket B --prefix P --incident I --output FILE
              --disk FILE --volume-id vol-…
      The Run Command path: the result line (last line of FILE) says completed, names the
      manifest, and the evidence it names is the disk's, byte for byte.
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

SECTOR = 512
# What QEMU's NVMe makes of any blkdebug read error, as the guest kernel reports it.
NVME_ENODATA = 61
CAPTURE_EVENTS = ("disk_detected", "job_started", "job_finished", "agent_stopping")


def logs(endpoint):
    return boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def events(client, group, stream=None):
    """Every event of the group (of its STREAM only, if given), oldest first; [] while the group
    does not exist yet. The daemon's stream is its instance ID: one per boot here."""
    out, token = [], None
    while True:
        kwargs = {"logGroupName": group}
        if stream:
            kwargs["logStreamNames"] = [stream]
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


def wait_for(timeout, probe, failure, interval=0.25):
    """Calls probe() every INTERVAL seconds until it returns something other than None, within
    TIMEOUT seconds; prints that (unless it is True) and returns 0, else prints FAILURE and
    returns 1."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            if found is not True:
                print(found)
            return 0
        time.sleep(interval)
    print(f"evidence: {failure} after {timeout} s", file=sys.stderr)
    return 1


def wait_log(args):
    client = logs(args.endpoint)

    def probe():
        return next((e["timestamp"] for e in events(client, args.group, args.stream)
                     if args.contains in e["message"]), None)
    return wait_for(args.timeout, probe, f"no event containing {args.contains!r} in {args.group}")


def wait_event(args):
    def probe():
        return next((True for m in capture_events(args.endpoint, args.stream)
                     if m.get("event") == args.event and args.volume_id in (None, m.get("volume"))),
                    None)
    return wait_for(args.timeout, probe, f"no {args.event} event for {args.volume_id}")


def wait_upload(args):
    s3 = s3_client(args.endpoint)

    def probe():
        return next((u["Key"] for u in s3.list_multipart_uploads(Bucket=args.bucket).get("Uploads", [])
                     if s3.list_parts(Bucket=args.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts")),
                    None)
    return wait_for(args.timeout, probe, f"no multipart upload with a part in {args.bucket}")


def watch_console(args):
    seen = b""
    needle = args.contains.encode()

    def probe():
        nonlocal seen
        try:
            with open(args.file, "rb") as f:
                f.seek(len(seen))
                seen += f.read()
        except FileNotFoundError:
            pass
        return f"{time.time():.3f}" if seen.count(needle) >= args.count else None
    return wait_for(args.timeout, probe, f"{args.contains!r} not in {args.file}", interval=0.02)


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


class Checks:
    """Prints each check as it is made; remembers the failed ones."""

    def __init__(self):
        self.failures = []

    def __call__(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            self.failures.append(what)
        return ok


def s3_client(endpoint):
    # moto answers a GET of a multipart object with the checksum of the part checksums as if it
    # were the whole object's; boto3 would reject the body for it. The image is compared with the
    # disk byte for byte below, which is the stronger check.
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(response_checksum_validation="when_required"))


def evidence_base(prefix, incident):
    return "/".join(p for p in (prefix, incident, "disk_evidence") if p)


def capture_events(endpoint, stream):
    """The daemon's JSON events in ForensicDiskCapture's STREAM, oldest first (the guest's clock)."""
    parsed = []
    for e in events(logs(endpoint), "ForensicDiskCapture", stream):
        try:
            parsed.append(json.loads(e["message"]))
        except ValueError:
            pass
    return parsed


def check_volume(check, s3, bucket, base, volume, read_only=("set",)):
    """One volume's evidence: manifest, image byte for byte (zeros exactly at an injected bad
    sector), hashes, sidecar, capture log, the reads and the write-block, the volume ID read from
    the NVMe serial, the status. READ_ONLY: the kernel_read_only states accepted (only `set`, this
    run's BLKROSET, for a disk attached writable)."""
    name, disk, volume_id, bad_sector = volume
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{base}/{name}.").get("Contents", [])]
    print(f"{name}: objects {', '.join(k[len(base) + 1:] for k in keys)}")
    manifest_key = f"{base}/{name}.manifest.json"
    if not check(manifest_key in keys, f"{name}: manifest s3://{bucket}/{manifest_key} exists"):
        return
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    with open(disk, "rb") as f:
        expected = bytearray(f.read())
    if bad_sector is not None:
        at = bad_sector * SECTOR
        check(expected[at:at + SECTOR].strip(b"\0") != b"", f"{name}: the disk's sector {bad_sector} is not zeros")
        expected[at:at + SECTOR] = bytes(SECTOR)
    image_key = f"{base}/{name}.image.dd"
    got = s3.get_object(Bucket=bucket, Key=image_key)["Body"].read() if image_key in keys else b""
    if got != expected:
        diff = [i // SECTOR for i in range(0, min(len(got), len(expected)), SECTOR)
                if got[i:i + SECTOR] != expected[i:i + SECTOR]]
        print(f"      image {len(got)} bytes, expected {len(expected)}; differing sectors: {diff[:10]}")
    check(got == expected, f"{name}: image object equals the disk" +
          (f" with sector {bad_sector} zero-filled" if bad_sector is not None else "") + " byte for byte")
    sha = hashlib.sha256(got).hexdigest()
    check(manifest["image"]["hashes"].get("sha256") == sha, f"{name}: manifest sha256 = sha256 of the image object")
    sidecar_key = f"{base}/{name}.image.dd.sha256"
    sidecar = s3.get_object(Bucket=bucket, Key=sidecar_key)["Body"].read().decode() if sidecar_key in keys else ""
    check(sidecar.rstrip("\n") == f"{sha}  {name}.image.dd",
          f"{name}: {name}.image.dd.sha256 reads '<sha256>  {name}.image.dd' (sha256sum -c)")
    log_key = f"{base}/{name}.capture.log"
    check(log_key in keys and s3.head_object(Bucket=bucket, Key=log_key)["ContentLength"] > 0,
          f"{name}: capture log stored and not empty")
    # The write-block and the reads, under the hardened unit's device policy and single capability:
    # a failed BLKROSET is only a warning in the log, so it is checked here.
    source = manifest["source"]
    check(source.get("direct_io") is True and source.get("exclusive_open") is True,
          f"{name}: read with O_DIRECT, held with O_EXCL (got {source.get('direct_io')}, {source.get('exclusive_open')})")
    check(source.get("kernel_read_only", {}).get("state") in read_only,
          f"{name}: kernel read-only flag set before the first read (got {source.get('kernel_read_only')})")
    identity = manifest["source"]["identity"]
    check(identity.get("ebs_volume_id") == volume_id,
          f"{name}: source identity ebs_volume_id = {volume_id} (from the NVMe serial)")
    check(manifest["case"]["evidence_name"] == name, f"{name}: evidence named {name}")
    status = manifest["acquisition"]["status"]
    bad = manifest.get("bad_ranges", [])
    if bad_sector is None:
        check(status == "completed" and not bad, f"{name}: status completed, no bad ranges (got {status}, {bad})")
    else:
        want = {"first_sector": bad_sector, "sector_count": 1, "sector_size": SECTOR,
                "offset": bad_sector * SECTOR, "length": SECTOR, "errno": NVME_ENODATA}
        check(status == "completed_with_errors", f"{name}: status completed_with_errors (got {status})")
        check(bad == [want], f"{name}: bad_ranges = [{want}] (got {bad})")


def check_imds(check, imds_log):
    """The job context came over IMDSv2: a token first, then only requests that carry it."""
    with open(imds_log) as f:
        requests = [json.loads(line) for line in f if line.strip()]
    token_first = bool(requests) and requests[0]["method"] == "PUT" and requests[0]["path"] == "/latest/api/token"
    check(token_first and all(r["token"] == "valid" for r in requests[1:] if r["method"] == "GET")
          and any(r["path"] == "/latest/user-data" and r["status"] == 200 for r in requests),
          f"user data read over IMDSv2 (token, then only tokened GETs): {len(requests)} requests")


def parse_volume(text):
    """NAME:DISK:VOLUME_ID[:BAD_SECTOR]"""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:DISK:VOLUME_ID[:BAD_SECTOR]")
    return parts[0], parts[1], parts[2], int(parts[3]) if len(parts) == 4 else None


def verify(args):
    """The daemon's boot: every volume imaged, each job reported, the agent stopped."""
    check = Checks()
    s3 = s3_client(args.endpoint)
    base = evidence_base(args.prefix, args.incident)
    for volume in args.volume:
        check_volume(check, s3, args.bucket, base, volume)
    check_imds(check, args.imds_log)
    parsed = capture_events(args.endpoint, args.stream)
    print(f"      capture events: {', '.join(str(m.get('event')) for m in parsed)}")
    for name in CAPTURE_EVENTS:
        check(any(m.get("event") == name for m in parsed), f"{name} event in ForensicDiskCapture")
    for name, _, volume_id, bad_sector in args.volume:
        finished = [m for m in parsed if m.get("event") == "job_finished" and m.get("volume") == volume_id]
        want = ("completed", 0) if bad_sector is None else ("completed_with_errors", 3)
        got = (finished[0].get("status"), finished[0].get("exit_code")) if finished else None
        check(got == want, f"{name}: job_finished with status {want[0]}, exit_code {want[1]} (got {got})")
        detected = [m for m in parsed if m.get("event") == "disk_detected" and m.get("volume") == volume_id]
        if finished and detected:
            f = finished[0]
            print(f"      {name}: detection_ms {detected[0].get('detection_ms')}, {f.get('bytes')} bytes "
                  f"in {f.get('duration_seconds')} s ({f.get('mb_per_s')} MB/s)")
    stopping = [m for m in parsed if m.get("event") == "agent_stopping"]
    check(bool(stopping) and stopping[-1].get("reason") == "done" and stopping[-1].get("jobs") == len(args.volume),
          f"agent_stopping: reason done after {len(args.volume)} jobs (got {stopping[-1:]})")
    return finish(check.failures)


def check_stopped(args):
    """`systemctl stop` mid-capture: nothing of the evidence stays, the upload is aborted, the
    job and the stop are reported."""
    check = Checks()
    s3 = s3_client(args.endpoint)
    base = evidence_base(args.prefix, args.incident)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=args.bucket, Prefix=base + "/").get("Contents", [])]
    check(not keys, f"no object under s3://{args.bucket}/{base}/ (got {keys})")
    uploads = s3.list_multipart_uploads(Bucket=args.bucket).get("Uploads", [])
    check(not uploads, f"no multipart upload left open (got {[u['Key'] for u in uploads]})")
    parsed = capture_events(args.endpoint, args.stream)
    print(f"      capture events: {', '.join(str(m.get('event')) for m in parsed)}")
    mine = [m for m in parsed if m.get("volume") == args.volume_id]
    started = [m for m in mine if m.get("event") == "job_started"]
    check(bool(started) and started[0].get("evidence_name") == args.name,
          f"{args.volume_id}: job_started for evidence {args.name} (got {started})")
    failed = [m for m in mine if m.get("event") == "job_failed"]
    got = (failed[0].get("status"), failed[0].get("exit_code")) if failed else None
    check(got == ("failed", 130), f"{args.volume_id}: job_failed with status failed, exit_code 130 (got {got})")
    check(not any(m.get("event") == "job_finished" for m in mine), f"{args.volume_id}: no job_finished")
    stopping = [m for m in parsed if m.get("event") == "agent_stopping"]
    check(bool(stopping) and stopping[-1].get("reason") == "interrupted",
          f"agent_stopping: reason interrupted (got {stopping[-1:]})")
    return finish(check.failures)


def check_result(args):
    """The Run Command path: the one-line result JSON of `acquire`, and the evidence it names."""
    check = Checks()
    with open(args.output) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    print(f"      result: {json.dumps(result)[:400]}")
    check(result.get("status") == "completed" and result.get("exit_code") == 0,
          f"result line: status completed, exit_code 0 (got {result.get('status')}, {result.get('exit_code')})")
    name = result.get("evidence_name") or "?"
    base = evidence_base(args.prefix, args.incident)
    check(result.get("manifest") == f"s3://{args.bucket}/{base}/{name}.manifest.json",
          f"result names the manifest s3://{args.bucket}/{base}/{name}.manifest.json (got {result.get('manifest')})")
    # The daemon set the flag on this disk before it was stopped; the flag stays.
    name_disk_id = (name, args.disk, args.volume_id, None)
    check_volume(check, s3_client(args.endpoint), args.bucket, base, name_disk_id,
                 read_only=("set", "already_set"))
    return finish(check.failures)


def ssm_script(args):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging" / "tests"))
    from check_docs import as_run_command, load

    doc = load(Path(args.doc))
    # As SSM does: a parameter not given takes the document's default (an empty signKmsKeyId: no
    # signing key).
    values = {name: str(spec["default"]) for name, spec in doc.get("parameters", {}).items()
              if "default" in spec}
    values.update(dict(v.split("=", 1) for v in args.values))
    steps = doc["mainSteps"]
    if len(steps) != 1:
        print(f"evidence: {args.doc} has {len(steps)} steps; the lab runs one", file=sys.stderr)
        return 1
    script = as_run_command(steps[0], values)
    if "/usr/bin/forensic-collector" not in script:
        print(f"evidence: {args.doc} does not run /usr/bin/forensic-collector", file=sys.stderr)
        return 1
    print(script.replace("/usr/bin/forensic-collector", args.binary))
    return 0


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
    w.add_argument("--stream")
    w.add_argument("--timeout", type=float, required=True)
    we = sub.add_parser("wait-event")
    we.add_argument("--event", required=True)
    we.add_argument("--volume-id")
    we.add_argument("--stream", required=True)
    we.add_argument("--timeout", type=float, required=True)
    wu = sub.add_parser("wait-upload")
    wu.add_argument("--bucket", required=True)
    wu.add_argument("--timeout", type=float, required=True)
    c = sub.add_parser("watch-console")
    c.add_argument("--file", required=True)
    c.add_argument("--contains", required=True)
    c.add_argument("--count", type=int, default=1, help="wait for the COUNT-th occurrence")
    c.add_argument("--timeout", type=float, required=True)
    d = sub.add_parser("error-sector")
    d.add_argument("--disk", required=True)
    d.add_argument("--sector", type=int)
    v = sub.add_parser("verify")
    for name in ("bucket", "prefix", "incident", "imds-log", "stream"):
        v.add_argument(f"--{name}", required=True)
    v.add_argument("--volume", type=parse_volume, action="append", required=True,
                   help="NAME:DISK:VOLUME_ID[:BAD_SECTOR], once per attached volume")
    st = sub.add_parser("check-stopped")
    for name in ("bucket", "prefix", "incident", "name", "volume-id", "stream"):
        st.add_argument(f"--{name}", required=True)
    sc = sub.add_parser("ssm-script")
    sc.add_argument("--doc", required=True)
    sc.add_argument("--binary", required=True)
    sc.add_argument("values", nargs="*")
    r = sub.add_parser("check-result")
    for name in ("bucket", "prefix", "incident", "output", "disk", "volume-id"):
        r.add_argument(f"--{name}", required=True)
    args = p.parse_args()
    return {"wait-log": wait_log, "wait-event": wait_event, "wait-upload": wait_upload,
            "watch-console": watch_console, "error-sector": error_sector,
            "verify": verify, "check-stopped": check_stopped,
            "check-result": check_result, "ssm-script": ssm_script}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
