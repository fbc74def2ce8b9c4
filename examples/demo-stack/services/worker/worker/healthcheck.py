"""Container health check: exit 0 when the worker's own /healthz returns 200.

Usage: python -m worker.healthcheck [PORT]   (PORT defaults to 8001, the
worker's default --health-port). Used by the image's HEALTHCHECK through
exec, so it depends on the standard library only.
"""

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    port = argv[0] if argv else "8001"
    if not port.isdigit():
        print(f"invalid port {port!r}: expected a TCP port number", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        # 503 lands here too: urlopen raises HTTPError for it.
        print(f"health check of {url} failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
