"""A labeling run in its own process, so tests can kill or interrupt it at any moment.

Usage: python driver.py IMAGES OUT CALL_LOG [LATENCY] [SINKS]
Every model call is appended to CALL_LOG (one image name per line) before it is answered.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import vlmkit
from vlmkit.testing import scripted_plugin


def main() -> int:
    images, out, call_log = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    latency = float(sys.argv[4]) if len(sys.argv) > 4 else 0.02
    sinks = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []

    def answer(request):
        with call_log.open("a") as log:
            log.write(f"{request.images[0].original.sha256}\n")
            log.flush()
            os.fsync(log.fileno())
        return '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'

    plugin = scripted_plugin(answer, latency_s=latency)
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=["vlmkit"]) as session:
        run = session.run("detect", [images], "cat", out_dir=out, sinks=sinks, concurrency=4)
        try:
            for _ in run:
                pass
        except KeyboardInterrupt:
            print(run.summary, file=sys.stderr)
            return 130
    print(run.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
