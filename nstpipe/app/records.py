"""Records and job identity: what nstpipe writes beside an output, and how a rerun knows
an output as its own and as made with the same settings (the fingerprint)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from nstpipe import __version__
from nstpipe.app.sizes import cpu_estimate
from nstpipe.config import Settings
from nstpipe.engine.device import resolve_device
from nstpipe.engine.features import resolve_precision
from nstpipe.events import Chosen
from nstpipe.jobs.plan import source_identity
from nstpipe.jobs.video_job import VideoJob
from nstpipe.jobs.worker import ImageJob, make_job
from nstpipe.media.writer import atomic_write_json, read_record, record_path

if TYPE_CHECKING:
    import torch

SETTINGS_FILE = "nstpipe-settings.json"  # a folder job's settings, in its output folder


def made_by_nstpipe(path: Path) -> bool:
    """Whether nstpipe wrote the file now at ``path``: a PNG that carries its record (the
    outputs of ``images``), or a file whose record beside it vouches for these very bytes
    (``image`` and ``video``)."""
    return read_record(path) is not None or beside_record(path) is not None


def beside_record(output: Path) -> dict[str, Any] | None:
    """The settings record beside ``output``, if it was written for the file now there
    (same size and modification time): a file edited or replaced since is not nstpipe's."""
    try:
        record = json.loads(record_path(output).read_text(encoding="utf-8"))
        return record if record["output"] == source_identity(output) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


def write_output_record(
    output: Path, job: ImageJob, device: torch.device, precision: str, result: Mapping[str, object], **fields: object
) -> None:
    """The record beside a single output (``image``, ``texture``, ``visualize``): the settings
    with what ``auto`` chose, the run's result, and the output's identity, by which a rerun
    knows the file as nstpipe's own (:func:`made_by_nstpipe`)."""
    record = settings_record(job, str(device), precision)
    record["result"] = dict(result)
    record.update(fields, output=source_identity(output))
    atomic_write_json(record_path(output), record)


def chosen(
    settings: Settings, size: str, output: Path | None, count: int | None = None, unit: str = "", own: tuple[int, int] | None = None
) -> Chosen:
    """The line of what a command chose: the size, the device and the arithmetic ``auto`` gave;
    ``own``: the input's own (width, height), named beside the size painted, with, on a CPU,
    about how long that size would take."""
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.engine.precision, device)
    source = f"{own[0]}x{own[1]}" if own is not None else ""
    estimate = cpu_estimate(own, settings) if own is not None and device.type == "cpu" and max(own) > settings.size else ""
    return Chosen(size, str(device), precision, output, count, unit, source, estimate)


def video_manifest(job: VideoJob, device: str, batch: int) -> dict[str, object]:
    record = settings_record(make_job(job.settings, list(job.styles)), device)
    record["settings"]["batch"] = batch  # type: ignore[index]  # what "auto" chose, like the device
    record.pop("fingerprint")  # the image fingerprint; the store writes the video job's
    record["input"] = {"path": str(job.source.resolve()), **dataclasses.asdict(job.info), "fps": str(job.info.fps)}
    return record
