"""The parts of one Gemini request: its images, its video and its prompt text, in that order.

Images are encoded by vlmkit (upright, explicit MIME type) and sent inline while the request
stays under ``inline_limit_bytes`` (base64 growth included); the largest go through the Files
API when it does not, and so does a large image sent a second time (upload on reuse, keyed by
content hash). Local videos go through the Files API (gemini-api) or inline when they fit
(Vertex AI, which has no Files API); ``gs://`` and other URIs are passed through as they are.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmkit import EncodedImage, MediaError, Request, SentImage, encode_image
from vlmkit_gemini.batch import _Capture, batch_mode
from vlmkit_gemini.files import FileStore
from vlmkit_gemini.models import ModelCaps
from vlmkit_gemini.sdktypes import sdk_types

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["PartsEncoder", "media_resolution"]

_REQUEST_OVERHEAD = 8 * 1024  # JSON framing, config and headers around the media
_SEEN_MAX = 4096  # image hashes remembered for upload-on-reuse


def _duration(seconds: float) -> str:
    """Seconds as a protobuf Duration: ``10`` → ``"10s"``, ``1.25`` → ``"1.25s"``."""
    text = f"{float(seconds):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _b64_size(size: int) -> int:
    return 4 * math.ceil(size / 3)


def media_resolution(options: Mapping[str, Any], caps: ModelCaps, *, video: bool) -> str | None:
    """The ``media_resolution`` for the images (``video=False``) or the video of a request."""
    chosen = options.get("media_resolution")
    if chosen:
        return str(chosen)
    return caps.video_media_resolution if video else caps.image_media_resolution


class PartsEncoder:
    """Builds the parts of one backend's requests and remembers which large images it sent
    (a second sending goes through the Files API). ``files`` is the backend's
    :class:`~vlmkit_gemini.files.FileStore`, or None where there is no Files API (Vertex AI)."""

    def __init__(
        self,
        *,
        caps: ModelCaps,
        files: FileStore | None,
        inline_limit_bytes: int,
        image_format: str,
        jpeg_quality: int,
        reuse_upload_min_bytes: int | None,
    ) -> None:
        self.caps = caps
        self.files = files
        self.inline_limit_bytes = inline_limit_bytes
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.reuse_upload_min_bytes = reuse_upload_min_bytes
        self._lock = threading.Lock()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def parts(self, request: Request, options: Mapping[str, Any] | None = None) -> list[types.Part]:
        """Images first, then the video, then the prompt (with the system text in front of it
        for a model that takes no system instruction)."""
        options = options or {}
        caps = self.caps
        parts = self.image_parts(request)
        image_level = self._part_resolution(media_resolution(options, caps, video=False))
        if image_level is not None:
            parts = [p.model_copy(update={"media_resolution": image_level}) for p in parts]
        if request.video is not None:
            video = self.video_part(request)
            level = self._part_resolution(media_resolution(options, caps, video=True))
            if level is not None:
                video = video.model_copy(update={"media_resolution": level})
            parts.append(video)
        prompt = request.prompt
        if request.system and not self.caps.system_instruction:
            prompt = f"{request.system}\n\n{prompt}"
        parts.append(sdk_types().Part.from_text(text=prompt))
        return parts

    def _part_resolution(self, level: str | None) -> types.PartMediaResolution | None:
        from google.genai import types

        if not level or not self.caps.part_media_resolution:
            return None
        return types.PartMediaResolution(
            level=types.PartMediaResolutionLevel(f"MEDIA_RESOLUTION_{level.upper()}")
        )

    # -- images ---------------------------------------------------------------------------
    def encode(self, sent: SentImage) -> EncodedImage:
        """The bytes to send for one image, by :func:`vlmkit.encode_image`: with ``"auto"`` an
        unchanged upright JPEG, PNG or WEBP file goes as it is (its content hash, the Files API
        key, is then the file's own); anything else is encoded once."""
        unchanged = sent.image is sent.original.image
        source = sent.original if unchanged else sent.image
        fmt = str(self.image_format).lower()
        return encode_image(source, format=fmt, quality=self.jpeg_quality)

    def image_parts(self, request: Request) -> list[types.Part]:
        encoded = [self.encode(sent) for sent in request.images]
        budget = self.inline_limit_bytes - _REQUEST_OVERHEAD - len(request.prompt.encode())
        budget -= len((request.system or "").encode())
        uploads: dict[int, Any] = {}
        if self.files is not None and isinstance(batch_mode(), _Capture):
            # A batch job reads its images later, from the Files API (kept 48 hours).
            for index, image in enumerate(encoded):
                uploads[index] = self.upload_image(image)
        elif self.files is not None:
            for index, image in enumerate(encoded):
                key = FileStore.key_for_bytes(image.sha256, image.mime_type)
                found = self.files.cached(key)
                if found is not None:
                    uploads[index] = found
                elif self._seen_before(key, len(image.data)):
                    uploads[index] = self.upload_image(image)
        inline = sum(_b64_size(len(e.data)) for i, e in enumerate(encoded) if i not in uploads)
        # Over the budget: move the largest images to the Files API until the rest fits.
        for index in sorted(range(len(encoded)), key=lambda i: -len(encoded[i].data)):
            if inline <= budget:
                break
            if index in uploads:
                continue
            image = encoded[index]
            uploads[index] = self.upload_image(image)
            inline -= _b64_size(len(image.data))
        parts, part = [], sdk_types().Part
        for index, image in enumerate(encoded):
            if index in uploads:
                found = uploads[index]
                parts.append(part.from_uri(file_uri=found.uri, mime_type=image.mime_type))
            else:
                parts.append(part.from_bytes(data=image.data, mime_type=image.mime_type))
        return parts

    def _seen_before(self, key: str, size: int) -> bool:
        """Whether a large image was sent before by this backend (it is then worth uploading)."""
        limit = self.reuse_upload_min_bytes
        if limit is None or size < limit:
            return False
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
            self._seen[key] = None
            while len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
        return False

    def upload_image(self, image: EncodedImage) -> Any:
        limit = self.inline_limit_bytes
        if self.files is None:
            raise MediaError(
                f"an image needs {_b64_size(len(image.data)):,} bytes inline, over "
                f"inline_limit_bytes={limit:,}, and Vertex AI has no Files API: shrink images "
                "with max_image_side=..., or raise inline_limit_bytes if your endpoint accepts "
                "larger requests"
            )
        key = FileStore.key_for_bytes(image.sha256, image.mime_type)
        return self.files.upload(
            image.data,
            key=key,
            mime_type=image.mime_type,
            display_name=f"vlmkit-{image.sha256[:16]}",
        )

    # -- video ----------------------------------------------------------------------------
    def _video_metadata(self, request: Request) -> types.VideoMetadata | None:
        from google.genai import types

        video = request.video
        assert video is not None
        fields: dict[str, Any] = {}
        if video.fps is not None:
            fields["fps"] = float(video.fps)
        if video.start_s is not None:
            fields["start_offset"] = _duration(video.start_s)
        if video.end_s is not None:
            fields["end_offset"] = _duration(video.end_s)
        return types.VideoMetadata(**fields) if fields else None

    def video_part(self, request: Request) -> types.Part:
        from google.genai import types

        video = request.video
        assert video is not None
        metadata = self._video_metadata(request)
        source = video.source
        if "://" in source or source.startswith("files/"):
            file_data = types.FileData(file_uri=source, mime_type=video.mime_type)
            return sdk_types().Part(file_data=file_data, video_metadata=metadata)
        path = Path(source)
        if not path.is_file():
            raise MediaError(f"{source}: no such video file", source=source)
        mime = video.mime_type
        if not mime:
            raise MediaError(
                f"{source}: unknown video type; use a file with a video suffix "
                "(.mp4, .mov, .webm, .mpeg, .avi, .flv, .wmv, .3gp)",
                source=source,
            )
        if self.files is not None:
            return self._uploaded_video_part(path, mime, metadata)
        return self._inline_video_part(path, mime, metadata)

    def _uploaded_video_part(
        self, path: Path, mime: str, metadata: types.VideoMetadata | None
    ) -> types.Part:
        from google.genai import types

        assert self.files is not None
        key = self.files.key_for_path(path, mime)
        uploaded = self.files.upload(path, key=key, mime_type=mime, display_name=path.name)
        file_data = types.FileData(file_uri=uploaded.uri, mime_type=uploaded.mime_type or mime)
        return sdk_types().Part(file_data=file_data, video_metadata=metadata)

    def _inline_video_part(
        self, path: Path, mime: str, metadata: types.VideoMetadata | None
    ) -> types.Part:
        from google.genai import types

        size = path.stat().st_size
        if _b64_size(size) + _REQUEST_OVERHEAD > self.inline_limit_bytes:
            raise MediaError(
                f"{path}: {size:,} bytes is too large to send inline (inline_limit_bytes="
                f"{self.inline_limit_bytes:,}, base64 included) and Vertex AI has no Files API. "
                "Upload it to Cloud Storage (gcloud storage cp ... gs://BUCKET/...) and pass the "
                "gs:// URI instead",
                source=str(path),
            )
        data = path.read_bytes()
        blob = types.Blob(data=data, mime_type=mime)
        return sdk_types().Part(inline_data=blob, video_metadata=metadata)
