"""The fake's Files API: uploaded and generated files, kept in memory."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlmkit_gemini.testing.records import RecordedRequest
from vlmkit_gemini.testing.routing import DOWNLOAD_RE
from vlmkit_gemini.testing.wire import MIB, Answer, error_body, get_field, now_rfc3339

if TYPE_CHECKING:
    from vlmkit_gemini.testing.fake_server import FakeGemini

__all__ = ["FileApi", "StoredFile", "Upload"]


@dataclass
class Upload:
    """A resumable upload in progress: what the start request declared, the bytes so far."""

    upload_id: str
    version: str
    mime_type: str
    declared_size: int | None
    display_name: str | None
    name: str | None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class StoredFile:
    """A file that exists: its API resource, its bytes, and how often it was read."""

    resource: dict[str, Any]
    data: bytes
    gets: int = 0


class FileApi:
    """The Files API: resumable uploads (start, chunks, query, cancel), get with video processing
    states, list, delete, and download of generated files."""

    def __init__(self, fake: FakeGemini) -> None:
        self.fake = fake

    def create(
        self,
        data: bytes,
        mime_type: str,
        display_name: str | None,
        name: str | None,
        version: str,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Called with the lock held."""
        file_id = (name or "").removeprefix("files/") or uuid.uuid4().hex[:12]
        if state is None:
            processing = mime_type.startswith("video/") and self.fake.processing_gets > 0
            state = "PROCESSING" if processing else "ACTIVE"
        now = now_rfc3339()
        resource: dict[str, Any] = {
            "name": f"files/{file_id}",
            "mimeType": mime_type,
            "sizeBytes": str(len(data)),
            "createTime": now,
            "updateTime": now,
            "expirationTime": now_rfc3339(48 * 3600),
            "sha256Hash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "uri": f"{self.fake.base_url}/{version}/files/{file_id}",
            "state": state,
            "source": "UPLOADED",
        }
        if display_name:
            resource["displayName"] = display_name
        self.fake._files[resource["name"]] = StoredFile(resource=resource, data=data)
        return resource

    def upload_start(self, req: RecordedRequest) -> Answer:
        protocol = (req.headers.get("x-goog-upload-protocol") or "").lower()
        if protocol != "resumable":
            return Answer(400, error_body(400, "Upload protocol must be 'resumable'."))
        file_meta = get_field(req.body, "file") or {}
        mime = req.headers.get("x-goog-upload-header-content-type") or get_field(
            file_meta, "mime_type"
        )
        if not mime:
            return Answer(400, error_body(400, "Upload has no mime type."))
        size = req.headers.get("x-goog-upload-header-content-length") or get_field(
            file_meta, "size_bytes"
        )
        upload = Upload(
            upload_id=uuid.uuid4().hex,
            version=req.api_version or "v1beta",
            mime_type=mime,
            declared_size=int(size) if size is not None and str(size).isdigit() else None,
            display_name=get_field(file_meta, "display_name"),
            name=get_field(file_meta, "name"),
        )
        with self.fake._lock:
            self.fake._uploads[upload.upload_id] = upload
        url = (
            f"{self.fake.base_url}/upload/{upload.version}/files"
            f"?upload_id={upload.upload_id}&upload_protocol=resumable"
        )
        return Answer(
            200,
            headers={
                "x-goog-upload-url": url,
                "x-goog-upload-control-url": url,
                "x-goog-upload-status": "active",
                "x-goog-upload-chunk-granularity": str(8 * MIB),
            },
        )

    def upload_chunk(self, req: RecordedRequest, chunk: bytes) -> Answer:
        def fail(status: int, message: str) -> Answer:
            return Answer(
                status, error_body(status, message), headers={"x-goog-upload-status": "final"}
            )

        upload_id = req.query.get("upload_id", "")
        command = req.upload_command or ""
        with self.fake._lock:
            upload = self.fake._uploads.get(upload_id)
        if upload is None:
            return fail(404, f"Unknown or expired upload session {upload_id!r}.")
        commands = {c.strip() for c in command.split(",")}
        if "cancel" in commands:
            with self.fake._lock:
                self.fake._uploads.pop(upload_id, None)
            return Answer(200, headers={"x-goog-upload-status": "cancelled"})
        if "query" in commands:
            return Answer(
                200,
                headers={
                    "x-goog-upload-status": "active",
                    "x-goog-upload-size-received": str(len(upload.data)),
                },
            )
        if "upload" not in commands:
            return fail(400, f"Unsupported X-Goog-Upload-Command {command!r}.")
        with self.fake._lock:
            if req.upload_offset != len(upload.data):
                return fail(
                    400,
                    f"Upload offset {req.upload_offset} does not match the "
                    f"{len(upload.data)} bytes received so far.",
                )
            upload.data += chunk
            if "finalize" not in commands:
                return Answer(
                    200,
                    headers={
                        "x-goog-upload-status": "active",
                        "x-goog-upload-size-received": str(len(upload.data)),
                    },
                )
            self.fake._uploads.pop(upload_id, None)
            if upload.declared_size is not None and upload.declared_size != len(upload.data):
                return fail(
                    400,
                    f"Upload size {len(upload.data)} does not match the declared "
                    f"{upload.declared_size} bytes.",
                )
            resource = self.create(
                bytes(upload.data),
                upload.mime_type,
                upload.display_name,
                upload.name,
                upload.version,
            )
            return Answer(200, {"file": dict(resource)}, headers={"x-goog-upload-status": "final"})

    def lookup(self, req: RecordedRequest) -> tuple[str, StoredFile | None]:
        file_id = req.path.rsplit("/", 1)[-1]
        with self.fake._lock:
            return file_id, self.fake._files.get(f"files/{file_id}")

    @staticmethod
    def no_file(file_id: str) -> Answer:
        return Answer(
            403,
            error_body(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist.",
                "PERMISSION_DENIED",
            ),
        )

    def get_file(self, req: RecordedRequest) -> Answer:
        file_id, f = self.lookup(req)
        if f is None:
            return self.no_file(file_id)
        with self.fake._lock:
            f.gets += 1
            res = f.resource
            if res["state"] == "PROCESSING" and f.gets >= self.fake.processing_gets:
                res["state"] = self.fake.processing_result
                res["updateTime"] = now_rfc3339()
                if self.fake.processing_result == "FAILED":
                    res["error"] = {"code": 400, "message": "File processing failed."}
            return Answer(200, dict(res))

    def list_files(self, req: RecordedRequest) -> Answer:
        size = int(req.query.get("pageSize") or req.query.get("page_size") or 10)
        start = int(req.query.get("pageToken") or req.query.get("page_token") or 0)
        with self.fake._lock:
            resources = [dict(f.resource) for f in self.fake._files.values()]
        page = resources[start : start + size]
        body: dict[str, Any] = {"files": page} if page else {}
        if start + size < len(resources):
            body["nextPageToken"] = str(start + size)
        return Answer(200, body)

    def delete_file(self, req: RecordedRequest) -> Answer:
        file_id, f = self.lookup(req)
        if f is None:
            return self.no_file(file_id)
        with self.fake._lock:
            self.fake._files.pop(f"files/{file_id}", None)
        return Answer(200, {})

    def download(self, req: RecordedRequest) -> Answer:
        m = DOWNLOAD_RE.match(req.path)
        name = f"files/{m['file_id']}" if m else ""
        with self.fake._lock:
            found = self.fake._files.get(name)
        if found is None:
            return Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        if found.resource.get("source") != "GENERATED":
            return Answer(
                400, error_body(400, "Only generated files can be downloaded.", "INVALID_ARGUMENT")
            )
        return Answer(200, raw=found.data, content_type="application/octet-stream")
