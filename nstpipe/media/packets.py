"""A video stream's packets: how many frames the file holds and whether it was cut off (read
from the packets, not decoded), and the frames decoded in order, a corrupt packet's frame
stood in for by the one before.

A file cut off (a download or a copy stopped short) keeps the length its header states
while its packets end early, and its container counts only the packets there.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Iterator

import av

from nstpipe.media.ffmpeg import TS_DISCONT

if TYPE_CHECKING:
    from nstpipe.media.video import _Clock

# Frames' time that the packets present may end short of the length a Matroska file states
# (a last frame without a duration) before the file counts as cut off.
CUT_OFF_FRAMES = 3


def frame_counts(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, int]:
    """The frames the file holds, and about how many more it states it should (0 where it
    holds them all, or states no length: MPEG-TS). An index's count (MP4) stands where the
    packets from the last keyframe on reach the stated end; otherwise the packets are
    counted, streamed, without decoding them, and the index's count, or the time they end
    short by, tells how many are missing."""
    # MPEG-TS's length is FFmpeg's estimate from the last packets there, which nothing states.
    stated = None if container.format.flags & TS_DISCONT else _stated_end(stream)
    if stated is None or not stream.time_base:
        return stream.frames or _packets(container, stream)[0], 0
    if stream.frames and _reaches(container, stream, stated):
        return stream.frames, 0
    count, end = _packets(container, stream)
    if stream.frames:
        return min(count, stream.frames), max(0, stream.frames - count)
    step = 1 / ((stream.average_rate or stream.guessed_rate or 30) * stream.time_base)  # a frame, in ticks
    if end is not None and end >= stated - CUT_OFF_FRAMES * step:
        return count, 0
    return count, round((stated - (end or 0)) / step)


def _stated_end(stream: av.video.stream.VideoStream) -> int | None:
    """Where the stream states that it ends, in its ticks: MP4's index, or Matroska's
    DURATION tag (HH:MM:SS.nnnnnnnnn)."""
    if stream.duration:
        return (stream.start_time or 0) + stream.duration
    tag = next((value for key, value in stream.metadata.items() if key.upper().startswith("DURATION")), "")
    try:
        hours, minutes, seconds = tag.split(":")
        length = (int(hours) * 60 + int(minutes)) * 60 + float(seconds)
    except ValueError:
        return None
    return round(length / stream.time_base) if length > 0 and stream.time_base else None


def _reaches(container: av.container.InputContainer, stream: av.video.stream.VideoStream, stated: int) -> bool:
    """Whether the packets from the last keyframe before ``stated`` on end there."""
    try:
        end = _packets(container, stream, stated)[1]
    except (av.error.FFmpegError, OSError):
        return False  # not seekable: every packet is read instead
    return end is not None and end >= stated


def _packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream, at: int = 0) -> tuple[int, int | None]:
    """The packets from the keyframe before ``at`` on, counted, and where the last ends (in
    the stream's ticks); streamed, not decoded."""
    container.seek(at, stream=stream)
    count, end = 0, None
    for packet in container.demux(stream):
        # demux() ends each stream with an empty flush packet; it is not a frame.
        if packet.size:
            count += 1
            time = packet.pts if packet.pts is not None else packet.dts
            if time is not None:
                end = max(end if end is not None else time, time + (packet.duration or 0))
    return count, end


def decoded(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[tuple[av.Packet, list[av.VideoFrame] | None]]:
    """Each packet with the frames decoding it gave, None where its data is corrupt: FFmpeg's
    own tools drop such a packet and go on decoding, rather than stop."""
    for packet in container.demux(stream):
        try:
            yield packet, stream.decode(packet)
        except av.error.InvalidDataError:
            yield packet, None


def in_order(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, clock: _Clock
) -> Iterator[tuple[av.VideoFrame, float, bool]]:
    """Each frame with its time, and whether it stands in for one that could not be decoded.

    A packet whose data is corrupt is dropped, as FFmpeg's tools drop it, and the frame
    shown before takes its place and its time, as FFmpeg does at a constant rate: so every
    reading gives a frame for each packet the probe counted, at its time, and a resumed run
    gets past it. The places are the times of the packets whose frames did not come out,
    as a decoder in threads names a failure some packets late (the first frame stands in
    for those before it); those still out at the end are decoded again (see :func:`_again`).
    A stream that decodes whole is read as it always was.
    """
    waiting: list[tuple[float, int]] = []  # (time, pts) of the packets sent whose frames are still out, a heap
    failed, sent, index = 0, 0, 0  # failures not yet stood in for; packets sent; frames given
    shown: av.VideoFrame | None = None
    for packet, frames in decoded(container, stream):
        if packet.size and packet.pts is not None and (time := clock.at(packet.pts, sent)) is not None:
            heapq.heappush(waiting, (time, packet.pts))
        sent += bool(packet.size)
        failed += frames is None
        for frame in frames or ():
            time = clock.seconds(frame, index)
            # Passed over: lost, or (without a failure) only out of order, to come later.
            while frame.pts is not None and waiting and waiting[0][0] < time - TICK:
                hole = heapq.heappop(waiting)[0]
                if failed:
                    failed, index = failed - 1, index + 1
                    yield shown if shown is not None else frame, clock.follow(hole), True
            if waiting and (frame.pts is None or waiting[0][0] <= time + TICK):
                heapq.heappop(waiting)  # its own packet
            yield frame, time, False
            shown, index = frame, index + 1
    if shown is not None:  # what is still out at the end is lost, its failure named or not
        found = _again(container.name, stream.index, [pts for _, pts in waiting])
        for _ in range(max(failed, len(waiting))):
            time, pts = heapq.heappop(waiting) if waiting else (None, None)
            shown, again = found.get(pts, shown), pts in found
            yield shown, clock.follow(time), not again


def _again(name: str, index: int, lost: list[int]) -> dict[int | None, av.VideoFrame]:
    """The frames at the timestamps ``lost`` decoded again, in one thread, from the keyframe
    before the first. A decoder in threads loses the frames it still held when the stream
    ends on a packet cut short (PyAV stops draining at the failure), some or others by the
    number of threads; in one, each packet's failure is its own."""
    found: dict[int | None, av.VideoFrame] = {}
    if not lost:
        return found
    try:
        with av.open(name) as container:
            stream = container.streams.video[index]
            stream.thread_type = "SLICE"
            container.seek(min(lost), stream=stream)
            for _, frames in decoded(container, stream):
                found.update((frame.pts, frame) for frame in frames or () if frame.pts in lost)
    except (av.error.FFmpegError, OSError):
        pass  # stood in for, as they were
    return found


# Seconds within which a frame's time is its packet's: both come from the same timestamp.
TICK = 1e-6
