"""The one rule of what a path is before anything opens it, shared by the folder plan and the
media readers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nstpipe.errors import InputError
from nstpipe.files import is_special_file, refuse_special_file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_or_a_link_to_one_is_special_and_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    os.symlink(fifo, tmp_path / "link.png")
    for path in (fifo, tmp_path / "link.png"):
        assert is_special_file(path)
        with pytest.raises(InputError, match=f"^{path}: not a regular file$"):
            refuse_special_file(path)


def test_a_file_a_folder_and_what_cannot_be_looked_at_are_left_to_the_open(tmp_path: Path) -> None:
    picture = tmp_path / "a.png"
    picture.write_bytes(b"")
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    for path in (picture, tmp_path, tmp_path / "missing.png", tmp_path / "broken.png"):
        assert not is_special_file(path)
        refuse_special_file(path)


def test_the_plan_asks_without_loading_pil() -> None:
    code = "import sys, nstpipe.jobs.plan; print(sorted({'PIL', 'av', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
