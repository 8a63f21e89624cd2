"""A video stream's packets decoded into its frames in order, a corrupt packet's frame stood
in for by the one before."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Iterator

import av

if TYPE_CHECKING:
    from nstpipe.media.video import _Clock

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
