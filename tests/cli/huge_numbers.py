"""A plugin module for the CLI tests (``--plugin tests.cli.huge_numbers``): a backend whose
detect answer holds integers of 310 digits (>= 10**309, too big for a float) next to good items."""

from __future__ import annotations

import vlmkit
from vlmkit.testing import ScriptedBackend

HUGE = "1" + "0" * 309
ANSWER = (
    '[{"box_2d": [100, 200, 500, 600], "label": "cat"}, '
    f'{{"box_2d": [{HUGE}, 0, 500, 500], "label": "huge box"}}, '
    f'{{"box_2d": [0, 0, 400, 300], "label": "dog", "score": {HUGE}}}, '
    f'{{"box_2d": [0, 0, 100, -{HUGE}], "label": "negative"}}]'
)


@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(
        name="huge-numbers",
        factory=lambda **config: ScriptedBackend({"detect": ANSWER}, **config),
        tasks={"detect"},
        description="Answers with integers too big for a float.",
    )
