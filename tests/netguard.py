"""Refuse every network connection that does not stay on this machine.

Installed for the whole test session by ``tests/conftest.py``. A blocked attempt raises
:class:`EgressBlocked` at the call site *and* is recorded, so the autouse fixture fails the test
even if library code swallowed the exception (an SDK retry loop, a broad ``except OSError``).
"""

from __future__ import annotations

import ipaddress
import socket
import threading

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class EgressBlocked(OSError):
    """A test tried to reach a non-loopback address."""


class NetGuard:
    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._lock = threading.Lock()
        self._installed = False
        self._real_connect = socket.socket.connect
        self._real_connect_ex = socket.socket.connect_ex
        self._real_getaddrinfo = socket.getaddrinfo
        self._real_create_connection = socket.create_connection

    @staticmethod
    def is_local(host: object) -> bool:
        if host is None:
            return True
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        host = str(host).strip("[]").lower()
        if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def _refuse(self, what: str) -> EgressBlocked:
        with self._lock:
            self.attempts.append(what)
        return EgressBlocked(f"test tried to reach a non-loopback address: {what}")

    def take_attempts(self) -> list[str]:
        with self._lock:
            attempts, self.attempts = self.attempts, []
        return attempts

    def install(self) -> None:
        if self._installed:
            return
        guard = self

        def getaddrinfo(host, *args, **kwargs):
            if not guard.is_local(host):
                raise guard._refuse(f"getaddrinfo({host!r})")
            return guard._real_getaddrinfo(host, *args, **kwargs)

        def check(sock: socket.socket, address: object) -> None:
            inet = sock.family in (socket.AF_INET, socket.AF_INET6)
            if inet and isinstance(address, tuple) and not guard.is_local(address[0]):
                raise guard._refuse(f"connect({address[0]!r}, {address[1]!r})")

        def connect(sock, address):
            check(sock, address)
            return guard._real_connect(sock, address)

        def connect_ex(sock, address):
            check(sock, address)
            return guard._real_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        self._installed = True


GUARD = NetGuard()
