"""Hook specifications: the contract between vlmkit and its plugins (filled in below)."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "vlmkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
