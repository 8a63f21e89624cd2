"""Failure records of a folder job: an input that failed is not tried again on every rerun.

An input that cannot be stylized (corrupt, or killing its worker on every try) gets a small
JSON record beside where its output would be, ``<output>.failed.json``, written atomically
by the driver as soon as the failure is known. A rerun skips it while the record matches
the job's fingerprint and the input's size and mtime, so a poisonous file costs its
retries once, not on every rerun; ``--retry-failed`` (or a changed input, or other
settings) tries it again. The record goes when the input later succeeds, and an output
that nstpipe made for it earlier (other settings, or the input as it was then) goes when
it fails. Together with the outputs' own records this gives every input of a finished run
exactly one of: a valid output, or a recorded failure; or, where the machine and not the
input was at fault (permission denied), neither: the failure is reported, and the next
run tries the input again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from nstpipe.events import ImageTask
from nstpipe.jobs.plan import source_identity
from nstpipe.media.names import fit_name, name_max
from nstpipe.media.writer import atomic_write_json, read_record, remove_quietly

FAILED_SUFFIX = ".failed.json"


def failure_path(task: ImageTask) -> Path:
    """``<output>.failed.json``; where that name is too long for the file system (an input
    named with 250 characters), the output's name cut, with a hash of the whole of it that
    tells apart two names cut alike: the same for every run, so a rerun finds the record."""
    return task.output.with_name(fit_name(task.output.name, FAILED_SUFFIX, name_max(task.output.parent)))


def record_failure(
    task: ImageTask, fingerprint: str, reason: str, limits: Mapping[str, Any] | None = None, lasting: bool = True
) -> None:
    """``limits``: settings that do not change an output but can make an input fail
    (``--max-pixels``); another value tries the input again.

    An earlier output of this input goes first (only one nstpipe made, and not one these
    settings made from the input as it is now): it is not what these settings make of the
    input, and a run cut off between the two steps leaves the input to be tried again.

    Not ``lasting`` (the machine was at fault: permission denied): nothing is recorded and
    nothing removed, and an earlier record goes, so that the next run tries the input
    again (its permissions mended, say) as if this run had not reached it.
    """
    if not lasting:
        clear_failure(task)
        return
    record: dict[str, Any] = {"fingerprint": fingerprint, "input": str(task.relative), "reason": reason, "limits": dict(limits or {})}
    try:
        record["source"] = source_identity(task.source)
    except OSError:
        record["source"] = None  # the input vanished: a rerun finds it missing again
    made = read_record(task.output)
    if made is not None and (made.get("fingerprint"), made.get("source")) != (fingerprint, record["source"]):
        remove_quietly(task.output)
    atomic_write_json(failure_path(task), record)


def read_failure(task: ImageTask) -> dict[str, Any] | None:
    try:
        record = json.loads(failure_path(task).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def failed_before(task: ImageTask, fingerprint: str, limits: Mapping[str, Any] | None = None) -> str | None:
    """The reason this input failed in an earlier run of this job, if it is unchanged since."""
    record = read_failure(task)
    if record is None or record.get("fingerprint") != fingerprint or record.get("limits") != dict(limits or {}):
        return None
    try:
        identity: dict[str, int] | None = source_identity(task.source)
    except OSError:
        identity = None
    return str(record.get("reason", "failed")) if record.get("source") == identity else None


def clear_failure(task: ImageTask) -> None:
    remove_quietly(failure_path(task))
