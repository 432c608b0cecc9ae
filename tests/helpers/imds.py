#!/usr/bin/env python3
"""imds: a loopback stand-in for the EC2 instance metadata service, IMDSv2 only.

  imds.py [--port N] [--user-data FILE] [--instance-id ID] [--ami-id ID] [--region R] [--instance-type T]
          [--down-for SECONDS [--down-as MODE]]
          [--turned-off] [--log FILE]

  PUT /latest/api/token  with X-aws-ec2-metadata-token-ttl-seconds (1-21600) returns a token and
                         echoes the TTL header; without a valid TTL header: 400.
  GET (any path)         without a valid X-aws-ec2-metadata-token: 401 (IMDSv1 is refused).
  GET /latest/user-data  the bytes of FILE, 404 when no FILE is given or it does not exist.
  GET /latest/meta-data/instance-id   ID (default i-0123456789abcdef0).
  GET /latest/meta-data/ami-id        ID (default ami-0123456789abcdef0).
  GET /latest/meta-data/placement/region  R (default us-east-1).
  GET /latest/meta-data/instance-type     T (default m7i.large).
  anything else          404.
  Every answer carries `Server: EC2ws`, as the real service's do.

  --down-for SECONDS   the service is not up for its first SECONDS (from start), as at an EC2
                       boot before IMDS answers; --down-as says how it is down:
                         refuse  the port is bound but not listening: connections are refused
                                 (the default; "ready PORT" is printed at once all the same)
                         503     every request is answered 503 Service Unavailable, no token issued
  --turned-off         every request is answered 403 Forbidden, as IMDS answers when the instance's
                       metadata endpoint is turned off (the AWS SDK reads 403 as "IMDS is disabled")

  --port N     listen on 127.0.0.1:N (default 0: a free port)
  --log FILE   one JSON line per request: method, path, token_ttl header, token (valid|invalid|none),
               status; a test asserts the token flow from it

Prints "ready PORT" on stdout once it accepts connections. Only loopback, only plain HTTP.
"""

import argparse
import http.server
import secrets
import sys
import threading
import time

from loopback import RequestLog, serve

MAX_TTL = 21600


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--user-data")
    p.add_argument("--instance-id", default="i-0123456789abcdef0")
    p.add_argument("--ami-id", default="ami-0123456789abcdef0")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--instance-type", default="m7i.large")
    p.add_argument("--down-for", type=float, default=0.0)
    p.add_argument("--down-as", choices=["refuse", "503"], default="refuse")
    p.add_argument("--turned-off", action="store_true")
    p.add_argument("--log")
    args = p.parse_args()
    up_at = time.monotonic() + args.down_for

    lock = threading.Lock()
    tokens = set()
    log = RequestLog(args.log)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def version_string(self):
            return "EC2ws"

        def _down(self):
            """Answers 403 when turned off, 503 while the service is not up yet (--down-as 503)."""
            if args.turned_off:
                self._reply(403, b"Forbidden\n")
                return True
            if time.monotonic() >= up_at:
                return False
            self._reply(503, b"Service Unavailable\n")
            return True

        def _record(self, status, token_state):
            log.write({
                "method": self.command,
                "path": self.path,
                "token_ttl": self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"),
                "token": token_state,
                "status": status,
            })

        def _reply(self, status, body=b"", headers=(), token_state="none"):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self._record(status, token_state)

        def do_PUT(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self._down():
                return None
            if self.path != "/latest/api/token":
                return self._reply(404)
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
                return self._reply(400)
            token = secrets.token_urlsafe(32)
            with lock:
                tokens.add(token)
            self._reply(200, token.encode(), [("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

        def do_GET(self):
            if self._down():
                return None
            token = self.headers.get("X-aws-ec2-metadata-token")
            with lock:
                valid = token in tokens
            state = "valid" if valid else ("invalid" if token else "none")
            if not valid:
                return self._reply(401, token_state=state)
            if self.path == "/latest/user-data":
                try:
                    with open(args.user_data, "rb") as f:
                        body = f.read()
                except (TypeError, FileNotFoundError):
                    return self._reply(404, token_state=state)
                return self._reply(200, body, token_state=state)
            if self.path == "/latest/meta-data/instance-id":
                return self._reply(200, args.instance_id.encode(), token_state=state)
            if self.path == "/latest/meta-data/ami-id":
                return self._reply(200, args.ami_id.encode(), token_state=state)
            if self.path == "/latest/meta-data/placement/region":
                return self._reply(200, args.region.encode(), token_state=state)
            if self.path == "/latest/meta-data/instance-type":
                return self._reply(200, args.instance_type.encode(), token_state=state)
            self._reply(404, token_state=state)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler, bind_and_activate=False)
    server.daemon_threads = True
    server.server_bind()
    if args.down_as == "refuse" and args.down_for > 0:
        # Bound (so the port is ours) but not listening: the kernel refuses connections.
        port = server.server_address[1]
        print(f"ready {port}", flush=True)
        time.sleep(args.down_for)
        server.server_activate()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0
    server.server_activate()
    return serve(server, server.server_address[1])


if __name__ == "__main__":
    sys.exit(main())
