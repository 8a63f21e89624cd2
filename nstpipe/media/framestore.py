"""The work folder of a video job: finished stylized frames and a manifest, all atomic.

Layout: ``<work dir>/<job key>/manifest.json`` and ``<job key>/frame-000000.png`` ...
The job key is the start of the job's fingerprint (settings, styles, weights and the
input's identity), so frames made with other settings or from another input live in
another folder and can never be mixed in. Each frame PNG also carries its own record
(fingerprint, index, time) in a text chunk, written in the same atomic rename as its
pixels: a frame either is complete and provably this job's, or it does not count.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nstpipe.errors import InputError
from nstpipe.media.imaging import read_rgb
from nstpipe.media.writer import atomic_write_json, clean_temp_files, read_record, write_png

MANIFEST = "manifest.json"
CHAIN = "chain"  # painted in its chunk's chain
SEAM = "seam"  # painted again to blend a chunk into the one before it
KEY_LENGTH = 16
FRAME_NAME = "frame-{:06d}.png"  # frame ``index``'s file in a job's folder


class FrameStore:
    def __init__(self, work_dir: Path, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.root = work_dir / fingerprint[:KEY_LENGTH]

    def open(self, manifest: Mapping[str, Any]) -> None:
        """Create the folder, drop temp files of a killed run, write the manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        clean_temp_files(self.root)
        atomic_write_json(self.root / MANIFEST, {"fingerprint": self.fingerprint, **manifest})

    def manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def path(self, index: int) -> Path:
        return self.root / FRAME_NAME.format(index)

    def record(self, index: int) -> dict[str, Any] | None:
        """The frame's record if the frame is complete and this job's, else None."""
        record = read_record(self.path(index))
        if record is None or record.get("fingerprint") != self.fingerprint or record.get("index") != index:
            return None
        return record

    def is_done(self, index: int, stage: str | None = None) -> bool:
        """Complete and this job's; at ``stage`` when one is given."""
        record = self.record(index)
        return record is not None and (stage is None or record.get("stage") == stage)

    def write(self, index: int, rgb: np.ndarray, time: float, iterations: int, stage: str = CHAIN) -> None:
        record = {"fingerprint": self.fingerprint, "index": index, "time": time, "iterations": iterations, "stage": stage}
        write_png(self.path(index), rgb, record)

    def time(self, index: int) -> float:
        record = self.record(index)
        if record is None:
            raise FileNotFoundError(f"{self.path(index)}: frame {index} is missing from the work folder")
        return float(record["time"])

    def read(self, index: int) -> np.ndarray:
        return read_rgb(self.path(index))

    def remove(self) -> None:
        """Delete this job's frames; the work dir goes too when nothing else is in it."""
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            self.root.parent.rmdir()
        except OSError:
            pass  # other jobs' frames, or files of the user's


def frame_files(folder: Path) -> list[Path]:
    """The frames of a job's folder in order: ``folder`` itself or the one job folder in it
    (a work dir that ``--keep-frames`` left); they must run from frame 0 without a gap."""
    if not folder.is_dir():
        raise InputError(folder, "folder not found" if not folder.exists() else "not a folder")
    holders = [folder] if any(folder.glob("frame-*.png")) else sorted(
        d for d in folder.iterdir() if d.is_dir() and any(d.glob("frame-*.png"))
    )
    if not holders:
        raise InputError(folder, "holds no frame-NNNNNN.png files (a work folder that --keep-frames left)")
    if len(holders) > 1:
        raise InputError(folder, f"holds the frames of {len(holders)} jobs; name one of its folders ({holders[0].name}, ...)")
    files = sorted(holders[0].glob("frame-*.png"))
    missing = next((i for i, f in enumerate(files) if f.name != FRAME_NAME.format(i)), None)
    if missing is not None:
        raise InputError(holders[0], f"frame {missing} is missing: the frames must run from frame 0 without a gap")
    return files
