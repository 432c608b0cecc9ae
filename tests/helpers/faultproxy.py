#!/usr/bin/env python3
"""faultproxy: a loopback HTTP proxy in front of a local AWS stand-in (moto) that injects faults and
records what the client sent.

  faultproxy.py UPSTREAM_PORT [--fail-parts N] [--reset-parts N] [--fail-all-parts] [--deny-all]
                [--corrupt-object-checksum] [--lose-completions N]
                [--ebs-throttle N] [--ebs-throttle-status 400|429] [--ebs-unavailable N]
                [--ebs-reset-blocks N] [--ebs-corrupt-blocks N] [--ebs-corrupt-index I]
                [--ebs-corrupt-all] [--ebs-corrupt-first-snapshot] [--ebs-deny] [--ec2-deny] [--ebs-deny-blocks]
                [--kms-deny-sign-after N] [--log FILE]

S3 (UploadPart):
  --fail-parts N     the first N UploadPart requests get HTTP 500 InternalError (not forwarded)
  --reset-parts N    the next N UploadPart requests get their connection reset (not forwarded)
  --fail-all-parts   every UploadPart gets HTTP 500: a retry budget that can only run out
  --deny-all         every request gets HTTP 403 AccessDenied, as from a role without s3:PutObject
  --corrupt-object-checksum
                     every HeadObject answer's x-amz-checksum-crc32c is changed (one bit of the
                     digest, the -N part count kept), as by a server that computes another checksum
                     or a middlebox that rewrites the header: the upload completed, its proof fails
  --lose-completions N
                     the first N CompleteMultipartUpload requests are forwarded (S3 completes the
                     object) and then the client's connection is reset with no answer; a retry of
                     that completion gets 412 PreconditionFailed, as S3 answers a retried
                     If-None-Match completion whose first attempt succeeded (moto completes it again)

EBS direct APIs (GetSnapshotBlock), in this order (each budget is spent before the next):
  --ebs-throttle N         the first N get RequestThrottledException (Reason ACCOUNT_THROTTLED), with
                           HTTP --ebs-throttle-status: 400 (the service model's status, the default)
                           or 429
  --ebs-unavailable N      the next N get HTTP 503 with the InternalServerException shape
  --ebs-reset-blocks N     the next N are forwarded, and the connection is reset halfway through the
                           block's body (the headers announced all 524288 bytes)
  --ebs-corrupt-blocks N   the next N are forwarded with one byte of the block flipped, so the data no
                           longer matches its x-amz-Checksum
  --ebs-corrupt-index I    every GetSnapshotBlock of block I is corrupted so (retries cannot help)
  --ebs-corrupt-all        every block is corrupted so: a retry budget that can only run out
  --ebs-corrupt-first-snapshot
                           every block of the first snapshot a block is asked of is corrupted so,
                           and no other's: one job of a collector fails, the next succeeds
  --ebs-deny               every EBS request gets HTTP 403 AccessDeniedException (Reason
                           UNAUTHORIZED_ACCOUNT) and every EC2 request 403 UnauthorizedOperation, as
                           for a role without ebs:* and ec2:DescribeSnapshots
  --ec2-deny               only EC2 requests (DescribeSnapshots) get 403 UnauthorizedOperation
  --ebs-deny-blocks        only GetSnapshotBlock gets 403 AccessDeniedException: a role that may
                           list a snapshot's blocks but not read them (or not decrypt them)

KMS (Sign):
  --kms-deny-sign-after N  the first N Sign requests are forwarded, every later one gets HTTP 400
                           AccessDeniedException (awsJson: `__type` in the body), as when the role's
                           kms:Sign is revoked mid-run; 0 denies them all

  --log FILE   one JSON line per request: method, path, query, request headers, the service (from
               the SigV4 credential scope), the EBS operation, and what was done

EBS errors have the rest-json shape of the EBS service model (botocore data/ebs/2019-11-02): the
model's HTTP status, the exception name in `x-amzn-ErrorType`, a JSON body `{"Message", "Reason"}`
(Reason values from the model's enums). EC2's is the EC2 query-protocol XML `<Response><Errors>`.

Listens on 127.0.0.1 on a free port and prints "ready PORT" once it accepts connections. Upstream is
127.0.0.1:UPSTREAM_PORT. Only loopback, only plain HTTP; request bodies need a Content-Length.
"""

import argparse
import base64
import http.client
import http.server
import json
import re
import socket
import struct
import sys
import threading
from urllib.parse import parse_qs, urlsplit

from loopback import RequestLog, serve

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}
INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
                  b'<Message>injected by faultproxy</Message></Error>')
PRECONDITION_FAILED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
                       b'<Message>At least one of the pre-conditions you specified did not hold (injected by '
                       b'faultproxy)</Message><Condition>If-None-Match</Condition></Error>')
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b'<Message>Access Denied (injected by faultproxy)</Message></Error>')
EC2_UNAUTHORIZED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                    b'<Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this '
                    b'operation. (injected by faultproxy)</Message></Error></Errors>'
                    b'<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>')
# SigV4: Credential=KEY/DATE/REGION/SERVICE/aws4_request names the service a request is for.
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/[^/,]+/[^/,]+/([^/,]+)/aws4_request")
EBS_OPERATIONS = [  # (method, path pattern, operation) of the EBS direct APIs' rest-json routes
    ("GET", re.compile(r"/snapshots/[^/]+/blocks/[^/]+"), "GetSnapshotBlock"),
    ("PUT", re.compile(r"/snapshots/[^/]+/blocks/[^/]+"), "PutSnapshotBlock"),
    ("GET", re.compile(r"/snapshots/[^/]+/blocks"), "ListSnapshotBlocks"),
    ("GET", re.compile(r"/snapshots/[^/]+/changedblocks"), "ListChangedBlocks"),
    ("POST", re.compile(r"/snapshots/completion/[^/]+"), "CompleteSnapshot"),
    ("POST", re.compile(r"/snapshots"), "StartSnapshot"),
]


def ebs_error(status, kind, message, reason=None):
    """(status, headers, body) of an EBS rest-json error: the exception's name in x-amzn-ErrorType,
    Message and Reason in a JSON body."""
    fields = {"Message": f"{message} (injected by faultproxy)"}
    if reason is not None:
        fields["Reason"] = reason
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": kind}, json.dumps(fields).encode()


def corrupt_checksum(value):
    """A composite checksum `BASE64[-N]` with one bit of its digest flipped, the part count kept."""
    digest, dash, count = value.partition("-")
    raw = bytearray(base64.b64decode(digest))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode() + dash + count


def ebs_operation(method, path):
    return next((op for m, pattern, op in EBS_OPERATIONS if m == method and pattern.fullmatch(path)), None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("upstream_port", type=int)
    p.add_argument("--fail-parts", type=int, default=0)
    p.add_argument("--reset-parts", type=int, default=0)
    p.add_argument("--fail-all-parts", action="store_true")
    p.add_argument("--deny-all", action="store_true")
    p.add_argument("--corrupt-object-checksum", action="store_true")
    p.add_argument("--lose-completions", type=int, default=0)
    p.add_argument("--ebs-throttle", type=int, default=0)
    p.add_argument("--ebs-throttle-status", type=int, choices=(400, 429), default=400)
    p.add_argument("--ebs-unavailable", type=int, default=0)
    p.add_argument("--ebs-reset-blocks", type=int, default=0)
    p.add_argument("--ebs-corrupt-blocks", type=int, default=0)
    p.add_argument("--ebs-corrupt-index", type=int)
    p.add_argument("--ebs-corrupt-all", action="store_true")
    p.add_argument("--ebs-corrupt-first-snapshot", action="store_true")
    p.add_argument("--ebs-deny", action="store_true")
    p.add_argument("--ec2-deny", action="store_true")
    p.add_argument("--ebs-deny-blocks", action="store_true")
    p.add_argument("--kms-deny-sign-after", type=int)
    p.add_argument("--log")
    args = p.parse_args()

    lock = threading.Lock()
    first_lock, first_snapshot = threading.Lock(), []
    budget = {"fail": args.fail_parts, "reset": args.reset_parts, "throttle": args.ebs_throttle,
              "unavailable": args.ebs_unavailable, "reset-block": args.ebs_reset_blocks,
              "corrupt": args.ebs_corrupt_blocks, "lose-completion": args.lose_completions,
              "kms-sign": args.kms_deny_sign_after or 0}
    log = RequestLog(args.log)
    lost_uploads = set()  # upload IDs whose completion answer was lost

    def spend(*kinds):
        """The first of `kinds` whose budget is left (and spends one), else None."""
        with lock:
            for kind in kinds:
                if budget[kind] > 0:
                    budget[kind] -= 1
                    return kind
        return None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def _first_snapshot(self, path):
            # /snapshots/SNAPSHOT/blocks/INDEX
            parts = path.split("/")
            snapshot = parts[2] if len(parts) > 2 else ""
            with first_lock:
                if not first_snapshot:
                    first_snapshot.append(snapshot)
                return first_snapshot[0] == snapshot

        def _fault_for(self, service, operation, is_part, path):
            if args.deny_all:
                return "deny"
            if service == "kms" and self.headers.get("X-Amz-Target") == "TrentService.Sign":
                if args.kms_deny_sign_after is None or spend("kms-sign"):
                    return "forward"
                return "deny-kms"
            if service == "ec2" and (args.ebs_deny or args.ec2_deny):
                return "deny-ec2"
            if service == "ebs" and (args.ebs_deny or (args.ebs_deny_blocks and operation == "GetSnapshotBlock")):
                return "deny-ebs"
            if operation == "GetSnapshotBlock":
                if args.ebs_corrupt_first_snapshot and self._first_snapshot(path):
                    return "corrupt"
                if args.ebs_corrupt_all or (args.ebs_corrupt_index is not None
                                            and path.rsplit("/", 1)[-1] == str(args.ebs_corrupt_index)):
                    return "corrupt"
                return spend("throttle", "unavailable", "reset-block", "corrupt") or "forward"
            if self.command == "POST" and "uploadId=" in (urlsplit(self.path).query or ""):
                upload = parse_qs(urlsplit(self.path).query).get("uploadId", [""])[0]
                with lock:
                    if upload in lost_uploads:
                        return "refuse-retry"
                if spend("lose-completion"):
                    with lock:
                        lost_uploads.add(upload)
                    return "lose-completion"
                return "forward"
            if not is_part:
                return "forward"
            if args.fail_all_parts:
                return "fail"
            return spend("fail", "reset") or "forward"

        def _answer(self, status, headers, body):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _reset(self):
            # SO_LINGER 0: close sends RST, as a dropped middlebox connection would.
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def _handle(self):
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            scope = CREDENTIAL_SCOPE.search(self.headers.get("Authorization") or "")
            service = scope.group(1) if scope else None
            operation = ebs_operation(self.command, url.path) if service == "ebs" else None
            is_part = self.command == "PUT" and "partNumber" in query and "uploadId" in query
            action = self._fault_for(service, operation, is_part, url.path)
            log.write({"method": self.command, "path": url.path, "query": url.query,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "service": service,
                       "operation": operation, "action": action})
            if action == "fail":
                return self._answer(500, {"Content-Type": "application/xml"}, INTERNAL_ERROR)
            if action == "deny":
                return self._answer(403, {"Content-Type": "application/xml"}, ACCESS_DENIED)
            if action == "refuse-retry":
                return self._answer(412, {"Content-Type": "application/xml"}, PRECONDITION_FAILED)
            if action == "deny-kms":
                body = json.dumps({"__type": "AccessDeniedException",
                                   "message": "not authorized to perform kms:Sign (injected by faultproxy)"})
                return self._answer(400, {"Content-Type": "application/x-amz-json-1.1"}, body.encode())
            if action == "deny-ec2":
                return self._answer(403, {"Content-Type": "text/xml;charset=UTF-8"}, EC2_UNAUTHORIZED)
            if action == "deny-ebs":
                return self._answer(*ebs_error(403, "AccessDeniedException", f"User is not authorized to perform: "
                                               f"ebs:{operation}", "UNAUTHORIZED_ACCOUNT"))
            if action == "throttle":
                return self._answer(*ebs_error(args.ebs_throttle_status, "RequestThrottledException",
                                               "Rate exceeded", "ACCOUNT_THROTTLED"))
            if action == "unavailable":
                return self._answer(*ebs_error(503, "InternalServerException", "Service Unavailable"))
            if action == "reset":
                return self._reset()
            upstream = http.client.HTTPConnection("127.0.0.1", args.upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            if action == "corrupt" and response.status == 200 and data:
                data = bytearray(data)
                data[len(data) // 2] ^= 0xFF
                data = bytes(data)
            if action == "lose-completion":
                return self._reset()  # S3 completed the object; its answer never arrives
            self.send_response(response.status, response.reason)
            for k, v in response.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    if (args.corrupt_object_checksum and self.command == "HEAD"
                            and k.lower() == "x-amz-checksum-crc32c"):
                        v = corrupt_checksum(v)
                        log.write({"method": self.command, "path": url.path, "action": "corrupt-checksum"})
                    self.send_header(k, v)
            # HEAD carries the object's length without a body.
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return None
            if action == "reset-block":
                self.wfile.write(data[: len(data) // 2])
                return self._reset()

            self.wfile.write(data)
            return None

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return serve(server, server.server_address[1])


if __name__ == "__main__":
    sys.exit(main())
