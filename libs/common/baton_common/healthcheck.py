"""Container healthcheck: ``python -m baton_common.healthcheck [PORT|URL]``.

GETs ``/readyz`` of the service in this container (port from the argument or
``BATON_HTTP_PORT``) and exits 0 when it answers 200, 1 otherwise. Used by
compose.yaml, where the images have no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    target = argv[0] if argv else os.environ.get("BATON_HTTP_PORT", "")
    if not target:
        print("usage: python -m baton_common.healthcheck PORT|URL (or set BATON_HTTP_PORT)", file=sys.stderr)
        return 2
    url = target if "://" in target else f"http://127.0.0.1:{int(target)}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
