"""Container health check: exit 0 when GET /healthz on the local API returns 200.

Used by the image's HEALTHCHECK through exec, so it depends on the standard
library only. Reads PORT like `python -m api` does.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"health check of {url} failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
