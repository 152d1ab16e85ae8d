import socket

import pytest

from tests.netguard import GUARD, EgressBlocked


def test_non_loopback_connection_is_refused_and_recorded():
    with pytest.raises(EgressBlocked):
        socket.create_connection(("203.0.113.7", 443), timeout=0.5)
    with pytest.raises(EgressBlocked):
        socket.getaddrinfo("generativelanguage.googleapis.com", 443)
    assert len(GUARD.take_attempts()) == 2  # taken here so this test itself passes


def test_loopback_is_allowed():
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        with socket.create_connection(("localhost", port), timeout=1):
            pass
    finally:
        server.close()


def test_child_processes_are_guarded_too():
    import subprocess
    import sys

    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('203.0.113.7', 443), timeout=0.5)\n"
        "except OSError as err:\n"
        "    print(type(err).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "EgressBlocked", out.stderr
