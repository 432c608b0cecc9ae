#!/usr/bin/env python3
"""moto's S3 and CloudWatch Logs server on 127.0.0.1, with conditional writes made atomic.

`motoserver.py PORT` serves moto exactly as `moto_server -H 127.0.0.1 -p PORT` does, with one
difference that makes it behave like real S3: moto checks `If-None-Match: *` and `If-Match` and
then writes, without a lock, so two racing CompleteMultipartUpload calls on one key can both pass
the check (seen: both runs "won", the second silently replaced the first's image). S3 decides a
conditional write atomically. Here every request carrying a condition that changes an object
(PUT, POST, DELETE with If-None-Match or If-Match) runs under one lock, so of two racing
conditional writes exactly one sees the key missing. Everything else stays concurrent.
"""

import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

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


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: motoserver.py PORT")
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto_server does: moto builds URLs from it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server does
    run_simple("127.0.0.1", port, AtomicConditionalWrites(app), threaded=True)


if __name__ == "__main__":
    main()
