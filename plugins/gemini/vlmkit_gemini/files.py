"""The Gemini Files API, as one backend instance uses it: upload once per content, wait until the
file is usable, clean up at the end.

Uploads are keyed by content hash (and MIME type), so an image or video sent again within the
backend's life is referenced by its file URI instead of being uploaded again; concurrent calls
with the same content wait for one upload. Videos are processed by Google after the upload:
:meth:`FileStore.upload` polls ``files.get`` until the file is ``ACTIVE`` (``FAILED`` and a
timeout are errors). :meth:`FileStore.close` deletes what this instance uploaded, unless asked
to keep it. Vertex AI has no Files API; its backend never builds a FileStore.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmkit import BackendError, MediaError
from vlmkit_gemini.retry import RetryPolicy

__all__ = ["FileStore", "file_sha256"]

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_EXPIRY_MARGIN = dt.timedelta(hours=1)  # re-upload a file this close to its 48 h expiry


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as err:
        raise MediaError(f"{path}: could not read the file ({err})", source=str(path)) from err
    return digest.hexdigest()


class FileStore:
    """Uploads to the Files API of one ``genai.Client``, cached by content for its lifetime.

    ``call(function, what)`` runs an SDK call under the backend's retry policy and error mapping.
    """

    def __init__(
        self,
        client: Any,
        *,
        call: Callable[[Callable[[], Any], str], Any],
        retry: RetryPolicy,
        timeout_s: float = 300.0,
        poll_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._call = call
        self._sleep = retry.sleep
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._files: dict[str, Any] = {}  # key → types.File (ACTIVE)
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) → sha256
        self.uploads = 0  # files this instance uploaded (for tests and stats)

    # -- keys -------------------------------------------------------------------------------
    def key_for_path(self, path: str | os.PathLike[str], mime_type: str) -> str:
        """Content key of a local file (hash cached by path, size and modification time)."""
        stat = Path(path).stat()
        ident = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            digest = self._hashes.get(ident)
        if digest is None:
            digest = file_sha256(path)
            with self._lock:
                self._hashes[ident] = digest
        return f"{digest}:{mime_type}"

    @staticmethod
    def key_for_bytes(sha256: str, mime_type: str) -> str:
        return f"{sha256}:{mime_type}"

    def cached(self, key: str) -> Any | None:
        """The usable uploaded file for ``key``, if there is one."""
        with self._lock:
            found = self._files.get(key)
        if found is not None and _expiring(found):
            self.forget(key)
            return None
        return found

    def forget(self, key: str) -> None:
        """Drop ``key`` from the cache (the file was deleted or expired on the server)."""
        with self._lock:
            self._files.pop(key, None)

    def forget_uri(self, uri: str) -> None:
        with self._lock:
            for key, found in list(self._files.items()):
                if found.uri == uri or found.name == uri:
                    self._files.pop(key, None)

    # -- upload -----------------------------------------------------------------------------
    def upload(
        self,
        source: bytes | str | os.PathLike[str],
        *,
        key: str,
        mime_type: str,
        display_name: str | None = None,
    ) -> Any:
        """The ACTIVE file for ``source``: from the cache, or uploaded and waited for."""
        found = self.cached(key)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one upload per content, however many threads want it
            try:
                found = self.cached(key)
                if found is not None:
                    return found
                uploaded = self._upload(source, mime_type=mime_type, display_name=display_name)
                with self._lock:
                    self.uploads += 1
                    self._files[key] = uploaded  # keep for cleanup even if processing fails
                try:
                    active = self._wait_active(uploaded)
                except BaseException:
                    self.forget(key)
                    self._delete(uploaded)
                    raise
                with self._lock:
                    self._files[key] = active
                return active
            finally:
                with self._lock:  # later callers find the file in the cache
                    self._key_locks.pop(key, None)

    def _upload(self, source: bytes | str | os.PathLike[str], *, mime_type: str, display_name):
        from google.genai import types

        config = types.UploadFileConfig(mime_type=mime_type, display_name=display_name)

        def run() -> Any:
            file: Any = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
            return self._client.files.upload(file=file, config=config)

        return self._call(run, "files.upload")

    def _wait_active(self, file: Any) -> Any:
        deadline = self._clock() + self.timeout_s
        interval = self.poll_interval_s
        while True:
            state = _state(file)
            if state == "ACTIVE":
                return file
            if state == "FAILED":
                error = getattr(file, "error", None)
                why = getattr(error, "message", None) or "no reason given"
                raise BackendError(
                    f"Google could not process the uploaded file {file.name} "
                    f"({file.mime_type}): {why}. Check that the file plays and is a supported "
                    "format"
                )
            if self._clock() >= deadline:
                raise BackendError(
                    f"the uploaded file {file.name} was still {state} after {self.timeout_s:g} s; "
                    "raise file_timeout_s for long videos"
                )
            self._sleep(min(interval, max(0.0, deadline - self._clock())))
            interval = min(interval * 1.5, 10.0)
            file = self._call(
                functools.partial(self._client.files.get, name=file.name), "files.get"
            )

    # -- cleanup ----------------------------------------------------------------------------
    def _delete(self, file: Any) -> None:
        try:
            self._client.files.delete(name=file.name)
        except Exception as err:  # best effort: files expire after 48 hours anyway
            log.debug("vlmkit-gemini: could not delete %s: %r", file.name, err)

    def close(self, *, delete: bool = True) -> None:
        """Delete the files this instance uploaded (unless ``delete=False``) and forget them."""
        with self._lock:
            files = list(self._files.values())
            self._files.clear()
        if delete:
            for file in files:
                self._delete(file)


def _state(file: Any) -> str:
    state = getattr(file, "state", None)
    if state is None:
        return "ACTIVE"  # images are usable at once; an absent state means no processing
    name = str(getattr(state, "value", state)).upper().removeprefix("STATE_")
    return "ACTIVE" if name == "UNSPECIFIED" else name


def _expiring(file: Any) -> bool:
    expires = getattr(file, "expiration_time", None)
    if not isinstance(expires, dt.datetime):
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    return expires - dt.datetime.now(dt.UTC) < _EXPIRY_MARGIN
