"""google-genai's request types, with a membership test that answers without walking fields.

The SDK turns every request into its wire form with ``_common.get_value_by_path``, which asks
``key in obj`` before ``getattr(obj, key)`` for each setting it reads. A pydantic model has no
``__contains__``, so Python's ``in`` walks all of the model's ``(name, value)`` pairs, and
never finds a name among them (it compares a name with pairs). For one detection request that
is about 90 walks, the config's 45 fields each time, 2,500 pairs in all: 0.2 ms of the SDK's
1.8 ms of CPU per call (google-genai 3.6.1), paid again on every call — a process's ceiling
on requests per second, where the GIL is the limit (docs/benchmarks.md).

The subclasses here answer ``in`` as the SDK's types do (False for a name; a pair is compared
with the pairs, as before) without the walk. They are the SDK's public types, subclassed: what
they dump, and what reaches the wire, is the same — pinned by tests/gemini/test_backend_wire.py
and compared with what the SDK's own classes send in tests/gemini/test_request_cost.py. What
differs is what a subclass changes in pydantic: such an object never equals (``==``) one of
the SDK's own classes, ``model_json_schema()`` lacks the class description, and the SDK's chat
helpers, which check parts by exact type, refuse these ``Part`` objects (vlmkit sends none to
a chat). One set of classes per process (pickle finds them by name).
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["SdkTypes", "sdk_types"]


class _NamesAreNotMembers:
    """``in`` as on a pydantic model (whose iteration yields ``(name, value)`` pairs), without
    iterating for a name, which is never one of them."""

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return False
        return any(key is pair or key == pair for pair in self)  # type: ignore[attr-defined]


@attrs.frozen
class SdkTypes:
    """The request types vlmkit-gemini builds its calls from."""

    GenerateContentConfig: type[types.GenerateContentConfig]
    Content: type[types.Content]
    Part: type[types.Part]
    Schema: type[types.Schema]


_MAKING = threading.Lock()


def sdk_types() -> SdkTypes:
    """The SDK's request types with a quick ``in``: one set of classes per process, also when
    several threads ask first at once."""
    if not _made.cache_info().currsize:
        with _MAKING:
            return _made()
    return _made()


@functools.cache
def _made() -> SdkTypes:
    from google.genai import types

    def quick(base: Any) -> Any:
        # The SDK's name and docstring, so that reprs, errors and help read as its own; this
        # module's __getattr__ finds the class by that name (pickle).
        namespace = {"__module__": __name__, "__qualname__": base.__name__, "__doc__": base.__doc__}
        return type(base.__name__, (_NamesAreNotMembers, base), namespace)

    return SdkTypes(
        GenerateContentConfig=quick(types.GenerateContentConfig),
        Content=quick(types.Content),
        Part=quick(types.Part),
        Schema=quick(types.Schema),
    )


def __getattr__(name: str) -> Any:
    if name in attrs.fields_dict(SdkTypes):
        return getattr(sdk_types(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
