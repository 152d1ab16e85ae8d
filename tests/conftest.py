"""Test-wide setup: no network egress, no credentials or hub access from the environment."""

from __future__ import annotations

import os

import pytest

from tests.netguard import GUARD

# Nothing a test does may depend on the developer's credentials or reach a hub.
_SCRUB_PREFIXES = ("GOOGLE_", "GEMINI_", "VLMKIT_", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
for _name in list(os.environ):
    if _name.startswith(_SCRUB_PREFIXES):
        del os.environ[_name]
os.environ["NO_GCE_CHECK"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny test models gain nothing from intra-op threads, and on a shared or loaded machine
# OpenMP's spinning threads made them 5-10x slower (tests/gemma: 6 min on 2 busy cores). Set
# before anything imports torch, so it also holds for the processes the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
GUARD.install()
# ... and in every Python process the tests start (see tests/guard/sitecustomize.py).
_GUARD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard")
os.environ["VLMKIT_TEST_NETGUARD"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_GUARD_DIR, os.environ.get("PYTHONPATH", "")) if p
)


@pytest.fixture(autouse=True)
def _no_egress():
    """Fail any test that tried to open a connection off this machine."""
    GUARD.take_attempts()
    yield
    attempts = GUARD.take_attempts()
    if attempts:
        pytest.fail("network egress attempted: " + "; ".join(attempts), pytrace=False)


@pytest.fixture(scope="session")
def installed_site(tmp_path_factory):
    """Test plugin distributions and contrib/backend-example, really installed by pip."""
    from tests import distributions

    return distributions.install(tmp_path_factory.mktemp("dists"))


@pytest.fixture
def plugin_site(installed_site, monkeypatch):
    """Make the pip-installed test distributions visible to importlib.metadata for one test."""
    import sys

    monkeypatch.syspath_prepend(str(installed_site))
    yield installed_site
    for name in [m for m in sys.modules if m.startswith(("vlmkit_test_", "vlmkit_openai"))]:
        del sys.modules[name]


@pytest.fixture
def decodes(monkeypatch):
    """The sizes at which Pillow decoded an image file's pixels, in order."""
    from PIL import ImageFile

    seen: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def counting(self):
        if self.tile:
            seen.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return seen
