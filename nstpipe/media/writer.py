"""Atomic writes of outputs and records: a temp file in the same folder, fsync, rename.

A final name therefore never holds a partial file, and a rerun can trust whatever it finds.
Each stylized PNG carries its own resume record in a text chunk, so the output and the
proof that it is complete are written in one atomic step.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image, PngImagePlugin, features

from nstpipe.errors import InputError, output_error

RECORD_KEY = "nstpipe"
TEMP_PREFIX = ".nstpipe-tmp-"


# Called with a finished temp file's path just before it is renamed onto its output: what
# must be on disk before the output is (its settings record; see publish).
BeforePublish = Callable[[str], None]


def atomic_write_bytes(path: Path, data: bytes, before: BeforePublish | None = None) -> None:
    """Write ``data`` to ``path`` in one step; any OS failure becomes an :class:`OutputError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temp(path.parent, temp_tag(path))
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        publish(tmp, path, before)
    except OSError as exc:
        remove_quietly(tmp)
        raise output_error(path, exc) from None
    except BaseException:
        remove_quietly(tmp)
        raise


def publish(tmp: str, path: Path, before: BeforePublish | None = None) -> None:
    """Flush a finished temp file to disk, then rename it onto ``path`` in one step;
    ``before`` runs between the two, with the temp file's path: the rename keeps the file's
    size and modification time, so a record written then can already vouch for it."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    if before is not None:
        before(tmp)
    os.replace(tmp, path)


def temp_tag(out_path: Path) -> str:
    """What the temp files of ``out_path`` are named after: a folder may hold other jobs'
    files in the making, which a cleanup must leave alone. Cut to 40 characters, so that the
    temp file's name stays within a file system's 255 bytes however long the output's is."""
    return out_path.name[:40] + "-"


def create_temp(folder: Path, tag: str = "") -> tuple[int, str]:
    """An exclusive new temp file in ``folder``; ``tag`` goes into its name, so that
    :func:`clean_temp_files` can clear one output's leftovers and no one else's.

    Not ``mkstemp``: it creates files readable by their owner only (0600), and the rename
    would carry that onto the output. Mode 0666 lets the umask decide, as for any new file.
    """
    while True:
        tmp = os.path.join(folder, TEMP_PREFIX + tag + secrets.token_hex(8))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def record_text(record: Mapping[str, Any]) -> str:
    """A record as an output PNG carries it: JSON in ASCII, which Pillow stores as a tEXt chunk."""
    return json.dumps(record, sort_keys=True, default=str)


def encode_png(rgb8: np.ndarray, record: Mapping[str, Any] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if record is not None:
        info.add_text(RECORD_KEY, record_text(record))
    buffer = io.BytesIO()
    Image.fromarray(rgb8, "RGB").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(path: Path, rgb8: np.ndarray, record: Mapping[str, Any] | None = None) -> None:
    atomic_write_bytes(path, encode_png(rgb8, record))


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
if features.check("avif"):  # Pillow writes AVIF only where it was built with libavif
    IMAGE_FORMATS[".avif"] = "AVIF"
_QUALITY = {"JPEG": 95, "WEBP": 95, "AVIF": 90}
RECORD_SUFFIX = ".settings.json"


def image_format(path: Path) -> str:
    """The format the suffix of ``path`` names; any other suffix, or none, is refused, so
    that a file never holds another format than its name says."""
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        said = f"the suffix {path.suffix!r} names no image format nstpipe writes" if path.suffix else "no suffix to name the image format"
        raise InputError(path, f"{said}; name it {', '.join(IMAGE_FORMATS)}")
    return fmt


# The longest side each format can hold (PNG and TIFF hold more than a picture has); JPEG's
# is libjpeg's, under the format's own 65535.
FORMAT_MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "BMP": 32767}


def check_encodable(path: Path, width: int, height: int) -> None:
    """Refuse, before any work, a picture larger than the format that ``path`` names can hold."""
    fmt = image_format(path)
    most = FORMAT_MAX_SIDE.get(fmt)
    if most is not None and max(width, height) > most:
        raise InputError(path, f"{fmt} holds at most {most} pixels a side, and the picture is {width}x{height}: "
                               "lower --size or name another format (.png)")


def write_image(path: Path, rgb8: np.ndarray, before: BeforePublish | None = None) -> None:
    """In the format the suffix names (see :func:`image_format`), atomically; ``before``: as
    for :func:`publish`."""
    fmt = image_format(path)
    atomic_write_bytes(path, encode_png(rgb8) if fmt == "PNG" else encode_image(rgb8, fmt), before)


def encode_image(rgb8: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    quality = {"quality": _QUALITY[fmt]} if fmt in _QUALITY else {}
    Image.fromarray(rgb8, "RGB").save(buffer, format=fmt, **quality)
    return buffer.getvalue()


def record_path(output: Path) -> Path:
    """Where the settings record of a single output lies: beside it, named after its whole
    name, so that ``a.jpg`` and ``a.png`` never share one."""
    return output.with_name(output.name + RECORD_SUFFIX)


PNG_END = bytes.fromhex("0000000049454e44ae426082")  # the IEND chunk every whole PNG ends with


def read_record(path: Path) -> dict[str, Any] | None:
    """The record stored in an output PNG, or None when missing, foreign, cut short or unreadable.

    Only the header and the last 12 bytes are read, not the pixels: a resume checks every
    finished output of an archive, and decoding them all would take longer than a
    thumbnail's worth of work each. The record's text chunk precedes the image data, and a
    PNG cut short lacks its end chunk.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(-len(PNG_END), os.SEEK_END)
            if fh.read() != PNG_END:
                return None
            fh.seek(0)
            with Image.open(fh, formats=["PNG"]) as img:
                text = img.info.get(RECORD_KEY)
        record = json.loads(text) if isinstance(text, str) else None
        return record if isinstance(record, dict) else None
    except (OSError, ValueError, SyntaxError):
        return None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def renew_record(path: Path, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Put ``new`` in place of the record ``old`` in the output PNG at ``path``, atomically,
    and change nothing else: every other chunk, the image data among them, is copied byte
    for byte, so the picture is neither decoded nor encoded again (an archive of big
    outputs is renewed at the cost of copying its files).

    False, the file left as it is, where ``path`` cannot be read or is not a whole PNG (cut
    short, a chunk that fails its CRC) carrying ``old`` in one record chunk (another output
    written there since): not an output to keep. An :class:`OutputError` where it cannot be
    written (a read-only folder, a full disk), the file left as it is.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return False
    spans = [span for span in png_chunks(data) or [] if data[span[0] + 4:span[0] + 8] == b"tEXt"]
    key = RECORD_KEY.encode() + b"\0"
    found = [(start, end) for start, end in spans if data[start + 8:end - 4].startswith(key)]
    if len(found) != 1:
        return False
    start, end = found[0]
    try:
        if json.loads(data[start + 8 + len(key):end - 4].decode("latin-1")) != old:
            return False
    except ValueError:
        return False
    body = b"tEXt" + key + record_text(new).encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    # The mode the output has (one made read-only by its owner stays so).
    atomic_write_bytes(path, data[:start] + chunk + data[end:], lambda tmp: shutil.copymode(path, tmp))
    return True


def png_chunks(data: bytes) -> list[tuple[int, int]] | None:
    """Where each chunk of the PNG ``data`` starts and ends (its length, type, data and
    CRC), or None where ``data`` is not one whole PNG: cut short, a chunk whose CRC fails,
    bytes after its end chunk."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    spans, start = [], len(PNG_SIGNATURE)
    while start + 12 <= len(data):
        (length,) = struct.unpack(">I", data[start:start + 4])
        end = start + 12 + length
        if end > len(data) or zlib.crc32(data[start + 4:end - 4]) != struct.unpack(">I", data[end - 4:end])[0]:
            return None
        spans.append((start, end))
        if data[start + 4:start + 8] == b"IEND":
            return spans if end == len(data) else None
        start = end
    return None


def clean_temp_files(folder: Path, tag: str = "") -> int:
    """Remove temp files that a killed run left in ``folder`` (not recursive), only those
    made with ``tag`` when one is given. Returns the count."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX + tag) and entry.is_file(follow_symlinks=False):
            removed += remove_quietly(entry.path)
    return removed


def clean_output_leftovers(output: Path) -> int:
    """Remove the temp files that a killed run left while writing ``output`` or the record
    beside it (:func:`record_path`), and no other job's. Returns the count."""
    return sum(clean_temp_files(output.parent, temp_tag(made)) for made in (output, record_path(output)))


def remove_quietly(path: str | os.PathLike[str]) -> int:
    try:
        os.unlink(path)
        return 1
    except OSError:
        return 0
