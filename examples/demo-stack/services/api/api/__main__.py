"""Start the API with uvicorn: `python -m api`.

Environment: PORT (default 8000) and LOG_LEVEL (default info).
"""

import logging
import os

import uvicorn

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def main() -> None:
    log_level = os.environ.get("LOG_LEVEL", "info").lower()
    if log_level not in LOG_LEVELS:
        raise SystemExit(f"invalid LOG_LEVEL {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    port_text = os.environ.get("PORT", "8000")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SystemExit(f"invalid PORT {port_text!r}: use a TCP port number from 1 to 65535")

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # 0.0.0.0 because the container's published port and the service network
    # both reach the process through the container's own interface.
    # The worker polls /jobs/claim every second, so per-request access lines
    # are written only at debug level. The app logs each job's events itself.
    uvicorn.run(
        "api.app:app",
        host="0.0.0.0",
        port=int(port_text),
        log_level=log_level,
        access_log=log_level == "debug",
    )


if __name__ == "__main__":
    main()
