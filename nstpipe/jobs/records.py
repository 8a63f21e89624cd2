"""Records and job identity: a job's fingerprint (the settings and the bytes of every file
that shapes its output), what nstpipe writes beside an output, and how a rerun knows an
output as its own and as made with the same settings."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from nstpipe import __version__
from nstpipe.config import Settings
from nstpipe.engine.flow import FLOW_REVISION
from nstpipe.errors import OutputError
from nstpipe.jobs.plan import source_identity
from nstpipe.media.imaging import PICTURE_READER_REVISION
from nstpipe.media.video import READER_REVISION, VideoInfo
from nstpipe.media.weights import sha256_file
from nstpipe.media.writer import BeforePublish, atomic_write_json, read_record, record_path, renew_record
from nstpipe.modes import spec_of
from nstpipe.modes.model import picture_pixels

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ImageJob:
    """Everything a worker needs, small enough to ship to another process.

    ``by_revision``: the job's identity with the picture reader's revision in place of the
    pixels of its pictures, as the records of earlier versions of nstpipe carry it: an
    output made under the revision the reader has today was read as it is read today.
    """

    settings: Settings
    styles: tuple[Path, ...]
    fingerprint: str
    by_revision: str = ""


def make_job(settings: Settings, styles: list[Path]) -> ImageJob:
    """Fix the job's identity: settings plus the bytes of every file that shapes the output,
    and what the reader makes of the pictures among them (each decoded once, as it is
    decoded for painting): a reader that decodes a style otherwise repaints every output,
    one that decodes it alike repaints none. The photos' own pixels are in each output's
    record (see :func:`photo_record`); a job that reads no picture, such as a
    visualization, has none."""
    files = file_identity(settings, styles)
    given = [*styles, *([Path(settings.engine.init)] if settings.engine.init_is_file else [])]
    extra = {**files, "pixels": [picture_pixels(path, settings.max_pixels) for path in given]} if given else files
    fingerprint = settings.fingerprint(extra)
    return ImageJob(settings, tuple(styles), fingerprint, revision_fingerprint(settings, styles, files))


def file_identity(settings: Settings, styles: list[Path]) -> dict[str, Any]:
    """The bytes of the styles, the init image and the weights."""
    extra: dict[str, Any] = {"styles": [sha256_file(p) for p in styles], "weights": weights_identity(settings.weights)}
    if settings.engine.init_is_file:
        extra["init"] = sha256_file(Path(settings.engine.init))
    return extra


def revision_fingerprint(settings: Settings, styles: list[Path], files: Mapping[str, Any] | None = None) -> str:
    """The job's identity by the picture reader's revision (see :attr:`ImageJob.by_revision`)."""
    extra = dict(files if files is not None else file_identity(settings, styles))
    if styles or settings.engine.init_is_file or spec_of(settings.mode).canvas is None:
        extra["picture_reader"] = PICTURE_READER_REVISION
    return settings.fingerprint(extra)


def input_limits(settings: Settings) -> dict[str, Any]:
    """What can make an input fail without changing an output (see
    :func:`~nstpipe.jobs.failures.record_failure`): ``max_pixels``, and the picture
    reader's revision, since a reader that decodes pictures otherwise may read one it
    could not, which the fingerprint no longer tells."""
    return {"max_pixels": settings.max_pixels, "picture_reader": PICTURE_READER_REVISION}


def photo_record(job: ImageJob, source: Mapping[str, Any], pixels: str) -> dict[str, Any]:
    """What an output records of the photo it was painted from: its identity, the reader's
    revision and what the reader gave (see :func:`same_reading`)."""
    return {"fingerprint": job.fingerprint, "source": dict(source), "picture_reader": PICTURE_READER_REVISION, "pixels": pixels}


def same_reading(job: ImageJob, record: Mapping[str, Any], pixels: Callable[[], str]) -> bool:
    """Whether an output whose ``record`` has this job's settings and source was painted from
    the pixels the reader gives today: the same reader revision, or, after a raise, the same
    hash of the photo decoded again (``pixels``, called only then). A record by revision
    alone (:attr:`ImageJob.by_revision`) counts under the same revision only."""
    if job.by_revision and record.get("fingerprint") == job.by_revision:
        return True
    if record.get("fingerprint") != job.fingerprint:
        return False
    if record.get("picture_reader") == PICTURE_READER_REVISION:
        return True
    return isinstance(record.get("pixels"), str) and record["pixels"] == pixels()


def renew_reading(output: Path, record: Mapping[str, Any]) -> bool:
    """Record in the PNG ``output``, whose photo :func:`same_reading` decoded and found as
    its ``record`` says, that today's reader gives those pixels: a later run keeps it
    without decoding the photo again. Whether ``output`` is kept: not where it turns out
    damaged (painted again). One that cannot be written to (a read-only folder, a full
    disk) is kept with its record as it is: the run goes on, and the next one decodes the
    photo again."""
    try:
        return renew_record(output, record, {**record, "picture_reader": PICTURE_READER_REVISION})
    except OutputError:
        return True


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
    # The image part by the reader's revision: a video's frames and its styles are known by
    # the revisions of their readers, not by their pixels.
    extra = {"image": revision_fingerprint(settings, styles), "video": video, "input": identity}
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


def job_finished(output: Path, job: ImageJob, identity: Mapping[str, Any]) -> bool:
    """:func:`finished` with ``job``'s fingerprint, or its identity by the picture reader's
    revision (:attr:`ImageJob.by_revision`): a picture of a mode without a photo, made from
    its styles as the reader gives them today."""
    fingerprints = {job.fingerprint, job.by_revision} - {""}
    return any(finished(output, {"fingerprint": fingerprint, **identity}) for fingerprint in fingerprints)


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
    record = settings_record(ImageJob(job.settings, job.styles, ""), device, precision)
    record["settings"]["batch"] = batch  # type: ignore[index]  # what "auto" chose, like the device
    record.pop("fingerprint")  # the store writes the video job's: no style is decoded for an image one
    record["input"] = {"path": str(job.source.resolve()), **dataclasses.asdict(job.info), "fps": str(job.info.fps)}
    return record
