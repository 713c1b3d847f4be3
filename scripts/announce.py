"""Wait for the web process to be ready, print where Signalbox is and how to log in, then idle.

honcho stops every process when one exits, so this one stays up after announcing.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

PORT = os.environ.get("SIGNALBOX_PORT", "8000")
URL = f"http://127.0.0.1:{PORT}/"


def main() -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(URL + "readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        print(f"Signalbox did not become ready at {URL}readyz within 120 s; see the web log above")
    password = os.environ.get("SIGNALBOX_DEMO_PASSWORD") or _saved_password()
    print(f"Signalbox is up at {URL}", flush=True)
    print(f"Log in as admin with password {password}", flush=True)
    while True:
        time.sleep(3600)


def _saved_password() -> str:
    path = Path(os.environ.get("SIGNALBOX_VAR_DIR", "var")) / "demo_password"
    return path.read_text().strip() if path.exists() else "(see the seed output above)"


if __name__ == "__main__":
    main()
