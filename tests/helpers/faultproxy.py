#!/usr/bin/env python3
"""faultproxy: a loopback HTTP proxy in front of a local S3 server that injects faults and records
what the client sent.

  faultproxy.py UPSTREAM_PORT [--fail-parts N] [--reset-parts N] [--fail-all-parts] [--deny-all]
                [--log FILE]

  --fail-parts N     the first N UploadPart requests get HTTP 500 InternalError (not forwarded)
  --reset-parts N    the next N UploadPart requests get their connection reset (not forwarded)
  --fail-all-parts   every UploadPart gets HTTP 500: a retry budget that can only run out
  --deny-all         every request gets HTTP 403 AccessDenied, as from a role without s3:PutObject
  --log FILE         one JSON line per request: method, path, query, request headers, what was done

Listens on 127.0.0.1 on a free port and prints "ready PORT" once it accepts connections. Upstream is
127.0.0.1:UPSTREAM_PORT. Only loopback, only plain HTTP; request bodies need a Content-Length.
"""

import argparse
import http.client
import http.server
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
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b'<Message>Access Denied (injected by faultproxy)</Message></Error>')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("upstream_port", type=int)
    p.add_argument("--fail-parts", type=int, default=0)
    p.add_argument("--reset-parts", type=int, default=0)
    p.add_argument("--fail-all-parts", action="store_true")
    p.add_argument("--deny-all", action="store_true")
    p.add_argument("--log")
    args = p.parse_args()

    lock = threading.Lock()
    budget = {"fail": args.fail_parts, "reset": args.reset_parts}
    log = RequestLog(args.log)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def _fault_for(self, is_part):
            if args.deny_all:
                return "deny"
            if not is_part:
                return "forward"
            with lock:
                if args.fail_all_parts:
                    return "fail"
                if budget["fail"] > 0:
                    budget["fail"] -= 1
                    return "fail"
                if budget["reset"] > 0:
                    budget["reset"] -= 1
                    return "reset"
            return "forward"

        def _handle(self):
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            is_part = self.command == "PUT" and "partNumber" in query and "uploadId" in query
            action = self._fault_for(is_part)
            log.write({"method": self.command, "path": url.path, "query": url.query,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "action": action})
            if action in ("fail", "deny"):
                status, body = (500, INTERNAL_ERROR) if action == "fail" else (403, ACCESS_DENIED)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            if action == "reset":
                # SO_LINGER 0: close sends RST, as a dropped middlebox connection would.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            upstream = http.client.HTTPConnection("127.0.0.1", args.upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            for k, v in response.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            # HEAD carries the object's length without a body.
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return serve(server, server.server_address[1])


if __name__ == "__main__":
    sys.exit(main())
