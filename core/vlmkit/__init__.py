"""vlmkit: computer vision on vision-language models."""

from vlmkit import prompts
from vlmkit.backend import (
    Backend,
    Generation,
    Request,
    SentImage,
    TaskRequest,
    VideoInput,
)
from vlmkit.errors import (
    AuthError,
    BackendError,
    BackendNotFound,
    Blocked,
    ConfigError,
    InvalidRequest,
    MediaError,
    ParseError,
    PluginError,
    RateLimited,
    SinkError,
    TransientError,
    UnsupportedTask,
    VlmkitError,
)
from vlmkit.evaluation import evaluate
from vlmkit.filelist import FileList
from vlmkit.geometry import Convention, Transform
from vlmkit.hookspecs import hookimpl
from vlmkit.media import EncodedImage, LoadedImage, ResizePolicy, encode_image, load_image
from vlmkit.parsing import parse
from vlmkit.plugins import PluginFailure, PluginWarning
from vlmkit.records import BackendInfo, EngineInfo, Option, SinkInfo
from vlmkit.runtime import Runtime, release_pixels
from vlmkit.session import Session
from vlmkit.sink import Sink, SinkItem, StagedSink
from vlmkit.tasks import run_generic
from vlmkit.types import (
    Box,
    Description,
    Detection,
    Detections,
    FinishReason,
    FrameDetections,
    LabelMap,
    Mask,
    OcrBlock,
    OcrResult,
    ParseReport,
    Point,
    Points,
    Provenance,
    Result,
    SkippedItem,
    TimedEvent,
    Usage,
    VideoResult,
)
from vlmkit.video import VideoFrame, VideoInfo, format_timestamp, probe_video, sample_frames

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendNotFound",
    "Blocked",
    "Box",
    "ConfigError",
    "Convention",
    "Description",
    "Detection",
    "Detections",
    "EncodedImage",
    "EngineInfo",
    "FileList",
    "FinishReason",
    "FrameDetections",
    "Generation",
    "InvalidRequest",
    "LabelMap",
    "LoadedImage",
    "Mask",
    "MediaError",
    "OcrBlock",
    "OcrResult",
    "Option",
    "ParseError",
    "ParseReport",
    "PluginError",
    "PluginFailure",
    "PluginWarning",
    "Point",
    "Points",
    "Provenance",
    "RateLimited",
    "Request",
    "ResizePolicy",
    "Result",
    "Runtime",
    "SentImage",
    "Session",
    "Sink",
    "SinkError",
    "SinkInfo",
    "SinkItem",
    "SkippedItem",
    "StagedSink",
    "TaskRequest",
    "TimedEvent",
    "Transform",
    "TransientError",
    "UnsupportedTask",
    "Usage",
    "VideoFrame",
    "VideoInfo",
    "VideoInput",
    "VideoResult",
    "VlmkitError",
    "__version__",
    "encode_image",
    "evaluate",
    "format_timestamp",
    "hookimpl",
    "load_image",
    "parse",
    "probe_video",
    "prompts",
    "release_pixels",
    "run_generic",
    "sample_frames",
]
