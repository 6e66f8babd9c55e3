"""Named points where a test can stop a real run to kill it there (SIGKILL, by PID).

Resume and atomic export must hold whenever a process dies; a test proves it by
killing a recipe at each point that matters: mid-epoch, between writing a
checkpoint and renaming it, after the rename, during and after export. Random
timing would rarely hit the narrow windows, so the run itself says when it is
there: with ``KERASZOO_PAUSE_AT=<point>`` and ``KERASZOO_PAUSE_FILE=<path>`` set,
the process writes its PID to the file on reaching the point and waits to be
killed. Without the variables every call returns at once.
"""

from __future__ import annotations

import os
import time

PAUSE_AT = "KERASZOO_PAUSE_AT"
PAUSE_FILE = "KERASZOO_PAUSE_FILE"
# A test that forgets to kill the process must not leave it sleeping forever.
MAX_PAUSE_S = 600


def enabled() -> bool:
    return bool(os.environ.get(PAUSE_AT))


def pause_point(name: str) -> None:
    """Waits here to be killed if the environment asks for point ``name``."""
    if os.environ.get(PAUSE_AT) != name:
        return
    path = os.environ[PAUSE_FILE]
    with open(f"{path}.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(f"{path}.tmp", path)
    time.sleep(MAX_PAUSE_S)
    os._exit(99)
