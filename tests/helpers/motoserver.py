#!/usr/bin/env python3
"""moto's S3, CloudWatch Logs, EBS and EC2 server on 127.0.0.1, made to behave like the real services.

  motoserver.py [--port N] [--ebs-page-cap N] [--ebs-empty-pages] [--log FILE]

serves moto as `moto_server -H 127.0.0.1 -p N` does (N = 0, the default: a free port), prints
"ready PORT" once it accepts connections and logs one JSON line per request
(method, path, query, status) to FILE, as the other helper servers do (loopback.py).

moto's EBS direct APIs are patched at start to answer as EBS does (motoebs.py says what moto does
differently: block indexes as strings, unordered, BlockSize 512, no pagination, HTTP 500 for an
unknown snapshot...). `--ebs-page-cap N` makes every ListSnapshotBlocks page hold at most N blocks,
as EBS may return fewer than MaxResults, so a client's pagination is exercised with few blocks;
`--ebs-empty-pages` puts an empty page with a NextToken before every page with blocks, as EBS may
while it scans a sparse stretch, so a client must follow an empty page's token.

Step Functions state machines run too (once `POST /moto-api/config` with
`{"stepfunctions": {"execute_state_machine": true}}` asks): their AWS SDK tasks are patched to call
services as Step Functions does (motosfn.py: PascalCase members, `cloudwatchlogs`, UserData sent
as given).

moto's KMS is patched to refuse a disabled key (or one pending deletion) as KMS does (motokms.py).

One more makes it behave like real S3: moto checks `If-None-Match: *` and `If-Match` and then
writes, without a lock, so two racing CompleteMultipartUpload calls on one key can both pass the
check (seen: both runs "won", the second silently replaced the first's image). S3 decides a conditional write atomically. Here every
request carrying a condition that changes an object (PUT, POST, DELETE with If-None-Match or
If-Match) runs under one lock, so of two racing conditional writes exactly one sees the key
missing. Everything else stays concurrent.
"""

import argparse
import logging
import os
import signal
import sys
import threading

import motoebs
import motokms
import motosfn
from loopback import RequestLog, serve
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import make_server

WRITES = {"PUT", "POST", "DELETE"}
CONDITIONS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")


class AtomicConditionalWrites:
    """WSGI middleware: one conditional object write at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") in WRITES and any(c in environ for c in CONDITIONS):
            with self.lock:
                # moto builds the whole response inside the call; materialise it under the lock.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class Logged:
    """WSGI middleware: one `--log` line per request. It also drops the `status` header moto copies
    from the handlers' header dict (where moto takes the status code from), which no AWS service
    sends."""

    def __init__(self, app, log):
        self.app = app
        self.log = log

    def __call__(self, environ, start_response):
        def logging_start_response(status, headers, *exc_info):
            self.log.write({"method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO"),
                            "query": environ.get("QUERY_STRING", ""), "status": int(status.split(" ", 1)[0])})
            headers = [(k, v) for k, v in headers if k.lower() != "status"]
            return start_response(status, headers, *exc_info)

        return self.app(environ, logging_start_response)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ebs-page-cap", type=int, metavar="N",
                   help="every ListSnapshotBlocks page holds at most N blocks (EBS may return fewer than asked)")
    p.add_argument("--ebs-empty-pages", action="store_true",
                   help="every ListSnapshotBlocks page with blocks is preceded by an empty one with a NextToken")
    p.add_argument("--log")
    args = p.parse_args()
    if args.ebs_page_cap is not None and args.ebs_page_cap < 1:
        p.error("--ebs-page-cap must be at least 1")
    motoebs.install(page_cap=args.ebs_page_cap, empty_pages=args.ebs_empty_pages)
    motosfn.install()
    motokms.install()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # werkzeug logs every request on stderr, which the tests inherit; --log has them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server does
    server = make_server("127.0.0.1", args.port, Logged(AtomicConditionalWrites(app), RequestLog(args.log)),
                         threaded=True)
    # As moto_server does: moto builds URLs from it (read per request, so set once the port is known).
    os.environ["MOTO_PORT"] = str(server.server_port)
    return serve(server, server.server_port)


if __name__ == "__main__":
    main()
