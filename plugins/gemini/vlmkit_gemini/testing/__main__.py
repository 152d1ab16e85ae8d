"""``python -m vlmkit_gemini.testing``: run the fake Gemini server until Ctrl-C.

It listens on 127.0.0.1 only, writes its base URL as the first line of standard output, and
answers every generation request from the script given on the command line::

    python -m vlmkit_gemini.testing --port 8765 --answers samples/offline-answers.json &
    vlmkit label samples/ --backend gemini-api --config base_url=http://127.0.0.1:8765 \\
        --config api_key=offline ...

Any API key is accepted; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from vlmkit_gemini.testing.answers import ImageAnswers, load_function
from vlmkit_gemini.testing.fake_server import FakeGemini

__all__ = ["main"]

log = logging.getLogger("vlmkit_gemini.testing")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlmkit_gemini.testing",
        description=(
            "A loopback fake of the Gemini API for trying and testing vlmkit offline. Prints "
            "its base URL; pass it as --config base_url=URL (with any --config api_key=...)."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=0, help="loopback port to listen on (default: any free one)"
    )
    parser.add_argument(
        "--answer",
        metavar="TEXT",
        help="the answer to every request (or to images not in --answers); default: 'ok'",
    )
    parser.add_argument(
        "--answers",
        metavar="FILE.json",
        help='answers per image: a JSON object {"image file": answer}, files relative to it',
    )
    parser.add_argument(
        "--answer-function",
        metavar="MODULE:FUNC",
        help="compute each answer: FUNC(request) in MODULE or in path/to/file.py",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="S", help="seconds before each answer"
    )
    return parser


def _script(args: argparse.Namespace, fake: FakeGemini) -> Any:
    """The default answer spec for the fake, from the command line."""
    fallback: Any = args.answer
    if args.answer_function:
        fallback = load_function(args.answer_function)
    if args.answers:
        return ImageAnswers.from_json(args.answers, default=fallback, fake=fake)
    return fallback if fallback is not None else "ok"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.answer is not None and args.answer_function:
        parser.error("--answer and --answer-function both set the default answer: pick one")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    fake = FakeGemini(port=args.port)
    try:
        fake.default_text = _script(args, fake)
    except (ValueError, ImportError) as err:
        parser.error(str(err))
    fake.latency_s = args.latency
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        fake.start()
    except OSError as err:
        parser.error(f"cannot listen on 127.0.0.1:{args.port} ({err}); choose another --port")
    try:
        sys.stdout.write(fake.base_url + "\n")
        sys.stdout.flush()
        log.info(
            "fake Gemini server ready: --config base_url=%s --config api_key=offline "
            "(Ctrl-C stops it)",
            fake.base_url,
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
        log.info("fake Gemini server stopped after %d generation requests", fake.calls["generate"])
        for error in fake.errors:
            log.info("scripting error: %s", error.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
