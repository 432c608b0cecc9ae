"""What every helper server here shares: the contract `tests/src/helper.rs` starts them by.

A server binds 127.0.0.1 itself, on a port the kernel chooses unless one is asked for (so no other
process can take the port between choosing and binding, as with a port picked by the test and
passed in), prints `ready PORT` once it accepts connections, and appends one JSON line per request
to the file given with `--log`.
"""

import json
import threading


class RequestLog:
    """The `--log FILE` of a helper server: one JSON object per line; nothing when FILE is None."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, entry):
        if self.path is None:
            return
        with self.lock, open(self.path, "a") as log:
            log.write(json.dumps(entry) + "\n")


def serve(server, port):
    """Announces `ready PORT` (the server is already bound and listening), then serves until killed."""
    print(f"ready {port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
