"""The audio of a painted video: every track of the source, copied where the output's
container holds its codec, re-encoded to AAC where it does not (an old camera's PCM or
ADPCM in MP4, FLAC or Opus in MOV), in time with the frames."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av

from nstpipe.errors import InputError
from nstpipe.media.ffmpeg import VIDEO_CONTAINERS, local, open_error

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


def _copyable(stream: av.audio.stream.AudioStream, form: str) -> bool:
    """Whether ``form``'s muxer takes the stream's packets as they are: tried on a scratch
    file in memory, since FFmpeg's list of the codecs a container holds is wider than what
    its muxer writes (Opus and FLAC in MOV are refused at the header)."""
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
    way its times are moved by the video's start, and they follow on where the source's
    jump back (joined MPEG-TS files), since a muxer refuses times that run backwards."""

    def __init__(self, stream: av.audio.stream.AudioStream, output: av.container.OutputContainer, form: str, offset: Fraction) -> None:
        self.copy = _copyable(stream, form)
        if self.copy:
            # The template copies the codec parameters only: packets pass through as they are.
            self.out: av.audio.stream.AudioStream = output.add_stream_from_template(stream)
        else:
            self.rate = stream.codec_context.sample_rate
            self.out = _aac_stream(output, stream.codec_context)
        self.output = output
        self.offset = offset  # the video stream's start, in seconds
        self.shift = 0  # ticks added where the source's times jumped back
        self.last: tuple[int, int] | None = None  # the last packet's dts and duration, in ticks
        self.next: int | None = None  # the next re-encoded sample's time, in samples

    def place(self, packet: av.Packet) -> None:
        """The packet's times in the output's clock: from the video's start, never back."""
        ticks = round(self.offset / packet.time_base) - self.shift
        if packet.dts is not None and self.last is not None and packet.dts - ticks <= self.last[0]:
            self.shift += self.last[0] + self.last[1] - (packet.dts - ticks)
            ticks = round(self.offset / packet.time_base) - self.shift
        if packet.pts is not None:
            packet.pts -= ticks
        if packet.dts is not None:
            packet.dts -= ticks
            self.last = (packet.dts, max(1, packet.duration or 0))

    def write(self, packet: av.Packet) -> None:
        if self.copy:
            packet.stream = self.out
            self.output.mux(packet)
            return
        for frame in packet.decode():
            assert isinstance(frame, av.AudioFrame)  # an audio stream's packet
            if self.next is None:
                start = frame.pts * frame.time_base if frame.pts is not None and frame.time_base else 0
                self.next = round(start * self.rate)
            # Counted in samples from the first: a decoder's own times may jump where the
            # packets' did.
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
        self._tracks = {s.index: AudioTrack(s, output, form, offset) for s in streams}
        # demux() with no stream would mean all of them.
        self._packets = self._input.demux(*streams) if streams else iter(())
        self._pending: av.Packet | None = None

    def copy_until(self, time: float | None) -> None:
        """Mux every packet that starts before ``time`` seconds (all of them for None)."""
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                packet = next(self._packets, None)
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
