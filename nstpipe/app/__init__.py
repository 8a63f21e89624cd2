"""The drivers behind the commands, one per kind of input, shared by every mode: check
everything up front, plan, execute, record. Events go to a ``report`` callable (the
CLI's progress display); nothing is printed.

``picture`` (one photo, or pictures from a size alone), ``folder`` and ``video`` paint
with the mode the settings name (:mod:`nstpipe.modes`); ``checks``, ``records`` and
``naming`` are what they share.
"""

from __future__ import annotations

from nstpipe.app.checks import check_inputs, check_output, check_writable, input_kind, protected
from nstpipe.app.folder import FolderOutcome, open_executor, stylize_folder
from nstpipe.app.metrics import measure_video, parse_gaps
from nstpipe.app.naming import default_folder_output, default_image_output, default_video_output, default_work_dir
from nstpipe.app.picture import paint_canvas, paint_picture
from nstpipe.app.sizes import video_settings
from nstpipe.app.video import VideoOptions, VideoOutcome, stylize_video, stylize_videos
from nstpipe.events import FrameDone, Skipped
from nstpipe.jobs.plan import SETTINGS_FILE
from nstpipe.jobs.records import made_by_nstpipe
from nstpipe.jobs.worker import TaskResult

ITEM_DONE: tuple[type, ...] = (Skipped, TaskResult, FrameDone)
"""The events that close an item of a job (a picture done, failed or kept, a frame painted):
what a progress display counts."""

__all__ = [
    "ITEM_DONE", "SETTINGS_FILE", "FolderOutcome", "VideoOptions", "VideoOutcome", "check_inputs", "check_output",
    "check_writable", "default_folder_output", "default_image_output", "default_video_output", "default_work_dir",
    "input_kind", "made_by_nstpipe", "measure_video", "open_executor", "parse_gaps", "paint_canvas", "paint_picture", "protected",
    "stylize_folder", "stylize_video", "stylize_videos", "video_settings",
]
