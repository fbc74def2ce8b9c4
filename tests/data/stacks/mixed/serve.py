"""Test service for the container tests. MODE picks the behaviour.

ok        serve 200 on every path
unhealthy serve 503 on every path
flap      alternate 200 and 503, starting with 200
crash     print an error and exit with code 3
Before serving, the server sleeps DELAY seconds. It listens on PORT (default 8000), and
READY_FILE, if set, is created once the server listens.
"""

import http.server
import itertools
import os
import sys
import time

MODE = os.environ.get("MODE", "ok")
PORT = int(os.environ.get("PORT", "8000"))
_flap = itertools.cycle([200, 503])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = {"ok": 200, "unhealthy": 503}.get(MODE) or next(_flap)
        body = f"{MODE} {status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if MODE == "crash":
    print("serve: missing setting DATABASE_URL, exiting", flush=True)
    sys.exit(3)
time.sleep(float(os.environ.get("DELAY", "0")))
server = http.server.HTTPServer(("0.0.0.0", PORT), Handler)
if os.environ.get("READY_FILE"):
    open(os.environ["READY_FILE"], "w").close()
print(f"serve: mode {MODE} listening on {PORT}", flush=True)
server.serve_forever()
