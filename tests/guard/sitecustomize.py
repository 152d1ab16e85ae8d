"""Installs the test network guard in every Python process the tests start.

tests/conftest.py puts this folder on PYTHONPATH, so child processes (the CLI, runner drivers,
pip) import it at start-up and refuse non-loopback connections just like the test process.
"""

import importlib.util
import os

if os.environ.get("VLMKIT_TEST_NETGUARD") == "1":
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "netguard.py")
    _spec = importlib.util.spec_from_file_location("_vlmkit_test_netguard", _path)
    if _spec is not None and _spec.loader is not None:
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
        _module.GUARD.install()
