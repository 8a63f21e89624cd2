"""Records and job identity: a job's fingerprint (the settings and the bytes of every file
that shapes its output), what nstpipe writes beside an output, and how a rerun knows an
output as its own and as made with the same settings."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from nstpipe import __version__
from nstpipe.config import Settings
from nstpipe.engine.flow import FLOW_REVISION
from nstpipe.jobs.plan import source_identity
from nstpipe.media.imaging import PICTURE_READER_REVISION
from nstpipe.media.video import READER_REVISION, VideoInfo
from nstpipe.media.weights import sha256_file
from nstpipe.media.writer import BeforePublish, atomic_write_json, read_record, record_path
from nstpipe.modes import spec_of

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ImageJob:
    """Everything a worker needs, small enough to ship to another process."""

    settings: Settings
    styles: tuple[Path, ...]
    fingerprint: str

def make_job(settings: Settings, styles: list[Path]) -> ImageJob:
    """Fix the job's identity: settings plus the bytes of every file that shapes the output,
    and how those files and the photos are read (a job that reads no picture, such as a
    visualization, keeps its identity when the reader changes)."""
    extra: dict[str, Any] = {"styles": [sha256_file(p) for p in styles], "weights": weights_identity(settings.weights)}
    if settings.engine.init_is_file:
        extra["init"] = sha256_file(Path(settings.engine.init))
    if styles or settings.engine.init_is_file or spec_of(settings.mode).canvas is None:
        extra["picture_reader"] = PICTURE_READER_REVISION
    return ImageJob(settings=settings, styles=tuple(styles), fingerprint=settings.fingerprint(extra))


def weights_identity(spec: str) -> str:
    return spec if spec in ("embedded", "torchvision") else f"file:{sha256_file(Path(spec))}"


@dataclass(frozen=True)
class VideoJob:
    settings: Settings
    styles: tuple[Path, ...]
    source: Path
    info: VideoInfo
    fingerprint: str


def make_video_job(settings: Settings, styles: list[Path], source: Path, info: VideoInfo) -> VideoJob:
    """The job's identity: the image fingerprint, the frame-chaining settings and the input.

    The encoder's quality (crf) is left out: changing it re-encodes the saved frames. The
    reader's and the flow's revisions are in: frames read as other pixels, or chained along
    another flow, are painted again, not mixed.
    """
    video = {**dataclasses.asdict(settings.video), "temporal_weight": settings.engine.temporal_weight}
    video.pop("crf")
    video["flow"] = FLOW_REVISION
    identity = {**source_identity(source), "frames": info.frame_count, "width": info.width, "height": info.height}
    identity["reader"] = READER_REVISION
    extra = {"image": make_job(settings, styles).fingerprint, "video": video, "input": identity}
    return VideoJob(settings, tuple(styles), source, info, settings.fingerprint(extra))


def made_by_nstpipe(path: Path) -> bool:
    """Whether nstpipe wrote the file now at ``path``: a PNG that carries its record (the
    outputs of ``images``), or a file whose record beside it vouches for these very bytes
    (``image`` and ``video``), or for the file of nstpipe's that they were about to replace
    (a run stopped between the record and the rename)."""
    return read_record(path) is not None or beside_record(path, replaced=True) is not None


def beside_record(output: Path, replaced: bool = False) -> dict[str, Any] | None:
    """The settings record beside ``output``, if it was written for the file now there
    (same size and modification time): a file edited or replaced since is not nstpipe's.
    ``replaced``: also if it was written for the file that was to replace it."""
    try:
        record = json.loads(record_path(output).read_text(encoding="utf-8"))
        now = source_identity(output)
        return record if record["output"] == now or (replaced and record.get("replaces") == now) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded(output: Path, record: Mapping[str, Any]) -> BeforePublish:
    """What writes ``record`` beside ``output`` once the file for it is finished, before it is
    renamed there (see :func:`~nstpipe.media.writer.publish`): the record names that file
    (the rename keeps its size and modification time), and the nstpipe file it replaces.

    So no moment leaves nstpipe's own output unknown to a rerun: before the rename the
    record vouches for the earlier file (kept as nstpipe's, painted again), after it for
    the new one (kept as finished).
    """
    def write(tmp: str) -> None:
        replaces = source_identity(output) if output.exists() and made_by_nstpipe(output) else None
        atomic_write_json(record_path(output), {**record, "output": source_identity(Path(tmp)), "replaces": replaces})

    return write


def finished(output: Path, identity: Mapping[str, Any]) -> bool:
    """Whether ``output`` is nstpipe's and was made with exactly ``identity`` (fingerprint,
    source, and what else the command records), so that a rerun keeps it."""
    record = beside_record(output)
    return record is not None and all(record.get(key) == value for key, value in identity.items())


def settings_record(job: ImageJob, device: str, precision: str | None = None) -> dict[str, object]:
    settings = job.settings.to_dict()
    settings["device"] = device  # what "auto" chose
    if precision is not None:
        settings["precision"] = precision  # what "auto" chose, like the device
    return {
        "nstpipe": __version__,
        "fingerprint": job.fingerprint,
        "styles": [str(p) for p in job.styles],
        "settings": settings,
    }


def output_record(
    job: ImageJob, device: torch.device, precision: str, result: Mapping[str, object], **fields: object
) -> dict[str, object]:
    """The record beside a single output (``image``, ``texture``, ``visualize``): the settings
    with what ``auto`` chose and the run's result; :func:`recorded` adds the output's
    identity, by which a rerun knows the file as nstpipe's own (:func:`made_by_nstpipe`)."""
    record = settings_record(job, str(device), precision)
    record["result"] = dict(result)
    record.update(fields)
    return record


def video_manifest(job: VideoJob, device: str, precision: str, batch: int) -> dict[str, object]:
    record = settings_record(make_job(job.settings, list(job.styles)), device, precision)
    record["settings"]["batch"] = batch  # type: ignore[index]  # what "auto" chose, like the device
    record.pop("fingerprint")  # the image fingerprint; the store writes the video job's
    record["input"] = {"path": str(job.source.resolve()), **dataclasses.asdict(job.info), "fps": str(job.info.fps)}
    return record
