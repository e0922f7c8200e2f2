"""Container health check: exit 0 when the server's /health answers 200.

Uses only the standard library, so the image needs no curl or wget just for this.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    """Probe http://127.0.0.1:$S2S_PORT/health and return a process exit code."""
    port = os.environ.get("S2S_PORT", "8000")
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"health check failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
