"""The audio of a painted video: every track of the source, copied where the output's
container holds its codec, re-encoded to AAC where it does not (an old camera's PCM or
ADPCM in MP4, FLAC or Opus in MOV), in time with the frames."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nstpipe.errors import InputError
from nstpipe.media.ffmpeg import VIDEO_CONTAINERS, Shifts, local, open_error, shifts

# The codec of a re-encoded audio track: every MP4 and MOV player reads it.
AUDIO_CODEC = "aac"
# The layouts FFmpeg's AAC encoder takes, by channel count: a source's own may be unnamed
# ("1 channels", as AVI's PCM often is), which the encoder refuses.
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def check_audio(source: Path, output: Path) -> None:
    """Before any work: every audio track of ``source`` can go into ``output``'s container,
    copied or re-encoded to AAC; one line naming the source and the track where it cannot."""
    try:
        with av.open(local(source)) as container:
            form = VIDEO_CONTAINERS.get(output.suffix.lower(), "mp4")
            for stream in container.streams.audio:
                if not _copyable(stream, form) and not _encodable(stream):
                    codec = stream.codec_context.name
                    raise InputError(source, f"audio track {stream.index} ({codec}, {stream.codec_context.channels} channels) "
                                     f"can be neither copied into {output.suffix} nor re-encoded to AAC")
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise open_error(source, exc) from None


# The audio codecs an MP4 keeps as they are: those browsers play. FFmpeg's muxer takes more
# (16- and 24-bit PCM, as ISO's "ipcm"), which no browser plays.
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})


def _copyable(stream: av.audio.stream.AudioStream, form: str) -> bool:
    """Whether ``form``'s muxer takes the stream's packets as they are: tried on a scratch
    file in memory, since FFmpeg's list of the codecs a container holds is wider than what
    its muxer writes (Opus and FLAC in MOV are refused at the header)."""
    if form == "mp4" and stream.codec_context.name not in MP4_AUDIO:
        return False
    try:
        with av.open(io.BytesIO(), "w", format=form) as scratch:
            scratch.add_stream_from_template(stream)
            scratch.start_encoding()
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    return True


def _encodable(stream: av.audio.stream.AudioStream) -> bool:
    """Whether the stream can be decoded, and an AAC encoder opened for its rate and channels."""
    context = stream.codec_context
    if context.channels not in AAC_LAYOUTS or context.sample_rate <= 0:
        return False
    try:
        av.codec.Codec(context.name, "r")
        with av.open(io.BytesIO(), "w", format="mp4") as scratch:
            _aac_stream(scratch, context).codec_context.open()
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    return True


def _aac_stream(output: av.container.OutputContainer, source: av.audio.codeccontext.AudioCodecContext) -> av.audio.stream.AudioStream:
    stream: av.audio.stream.AudioStream = output.add_stream(AUDIO_CODEC, rate=source.sample_rate, layout=AAC_LAYOUTS[source.channels])  # type: ignore[assignment]
    return stream


class AudioTrack:
    """One audio stream of the source on its way into the output: its packets copied as they
    are, or decoded and re-encoded to AAC where the container cannot hold its codec. Either
    way its times are moved by the video's start, and laid after the earlier ones where the
    source's start again (:func:`~nstpipe.media.ffmpeg.shifts`), as the frames' are."""

    def __init__(
        self, stream: av.audio.stream.AudioStream, output: av.container.OutputContainer, form: str, start: Fraction, shifts: Shifts
    ) -> None:
        self.copy = _copyable(stream, form)
        if self.copy:
            # The template copies the codec parameters only: packets pass through as they are.
            self.out: av.audio.stream.AudioStream = output.add_stream_from_template(stream)
        else:
            self.rate = stream.codec_context.sample_rate
            self.out = _aac_stream(output, stream.codec_context)
        self.output = output
        self.index = stream.index
        self.start = start  # the video stream's start, in seconds
        self.shifts = shifts
        self.count = 0  # packets placed
        self.last: int | None = None  # the last packet's dts, in ticks
        self.next: int | None = None  # the next re-encoded sample's time, in samples

    def place(self, packet: av.Packet) -> None:
        """The packet's times in the output's clock: from the video's start, never back."""
        if packet.dts is None:
            return
        seconds = Fraction(self.shifts.at(self.index, self.count)) - self.start
        self.count += 1
        ticks = round(seconds / packet.time_base)
        # A glitch a little back is nudged past the packet before: a muxer refuses it.
        if self.last is not None and packet.dts + ticks <= self.last:
            ticks = self.last + 1 - packet.dts
        packet.dts += ticks
        if packet.pts is not None:
            packet.pts += ticks
        self.last = packet.dts

    def write(self, packet: av.Packet) -> None:
        if self.copy:
            packet.stream = self.out
            self.output.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            return  # a corrupt packet is dropped, as FFmpeg's own tools drop it
        for frame in frames:
            assert isinstance(frame, av.AudioFrame)  # an audio stream's packet
            self._encode(frame)

    def _encode(self, frame: av.AudioFrame) -> None:
        """Timed by its own (placed) time where there is one; a gap in the source's sound is
        kept as silence, so that the sound after it stays with its picture."""
        at = round(frame.pts * frame.time_base * self.rate) if frame.pts is not None and frame.time_base else None
        if self.next is None:
            self.next = at or 0
        elif at is not None and at - self.next > self.rate // 100:  # a gap of over 10 ms
            self._silence(frame, at - self.next)
        self._encode_timed(frame)

    def _silence(self, like: av.AudioFrame, samples: int) -> None:
        values = like.to_ndarray()
        shape = (values.shape[0], samples) if like.format.is_planar else (1, samples * len(like.layout.channels))
        silence = av.AudioFrame.from_ndarray(np.zeros(shape, values.dtype), format=like.format.name, layout=like.layout.name)
        silence.sample_rate = like.sample_rate
        self._encode_timed(silence)

    def _encode_timed(self, frame: av.AudioFrame) -> None:
        assert self.next is not None
        frame.pts, frame.time_base = self.next, Fraction(1, self.rate)
        self.next += frame.samples
        self.output.mux(self.out.encode(frame))

    def finish(self) -> None:
        if not self.copy:
            self.output.mux(self.out.encode(None))


class AudioCopier:
    """Every audio stream of ``source`` into ``output``, in time order (see :class:`AudioTrack`).

    Frame times (read_frames') count from the video stream's start, so audio times are
    shifted by the video stream's start time too: whatever the source's offset between sound and
    picture (MPEG-TS starts at 1.4 s, edited MP4s anywhere), it stays the same.
    """

    def __init__(self, source: Path, output: av.container.OutputContainer, form: str) -> None:
        try:
            self._input = av.open(local(source))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise open_error(source, exc) from None
        video = self._input.streams.video
        start = video[0].start_time if video else None
        time_base = video[0].time_base if video else None
        offset = Fraction(start * time_base) if start is not None and time_base is not None else Fraction(0)
        streams = list(self._input.streams.audio)
        moved = shifts(source)
        self._tracks = {s.index: AudioTrack(s, output, form, offset, moved) for s in streams}
        self._source = source
        # demux() with no stream would mean all of them.
        self._packets = self._input.demux(*streams) if streams else iter(())
        self._pending: av.Packet | None = None

    def copy_until(self, time: float | None) -> None:
        """Mux every packet that starts before ``time`` seconds (all of them for None)."""
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets, None)
                except av.error.FFmpegError as exc:
                    raise open_error(self._source, exc) from None
                if packet is None:
                    return
                if not packet.size:  # the empty flush packet that ends each stream
                    continue
                self._tracks[packet.stream.index].place(packet)
            if time is not None and packet.dts is not None and packet.dts * packet.time_base > time:
                self._pending = packet
                return
            self._tracks[packet.stream.index].write(packet)

    def finish(self) -> None:
        """Whatever the re-encoders still hold."""
        for track in self._tracks.values():
            track.finish()

    def close(self) -> None:
        self._input.close()
