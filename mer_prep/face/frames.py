"""Stage 1: frame extraction from image sequences and video files.

Only the frames asked for are decoded. Returned frames are ``uint8``: ``(N, H, W, 3)`` RGB, or
``(N, H, W)`` when ``gray=True``. Every failure raises :class:`~mer_prep.errors.FrameReadError`
naming the file and the sample; so does a JPEG the decoder had to patch up (see
:func:`_decode_jpeg`). A file the operating system cannot read (missing, an I/O error) raises
its subclass :class:`~mer_prep.errors.FrameIOError`: that may pass, a corrupt file will not.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from mer_prep.errors import FrameIOError, FrameReadError

__all__ = ["read_depth_frames", "read_frames", "read_video_frames"]

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
# Some encoders pad after the end marker; the marker must still be near the end, or followed by
# nothing but 0x00/0xFF fill (files padded to a block size).
_TAIL_BYTES = 64
_PADDING = b"\x00\xff"


def _truncation_problem(data: bytes) -> str:
    """Why ``data`` looks cut short, or ``""``.

    With no data left, libjpeg-turbo fills the rest of a JPEG with grey and does not even warn,
    so the end-of-image marker is checked before decoding rather than trusting the decoder. PNG
    and BMP get the equivalent check; other formats rely on the decoder alone.
    """
    if data.startswith(_JPEG_SOI):
        if _JPEG_EOI not in data[-_TAIL_BYTES:] and not data.rstrip(_PADDING).endswith(_JPEG_EOI):
            return "truncated JPEG (no end-of-image marker)"
    elif data.startswith(_PNG_SIGNATURE):
        if _PNG_IEND not in data[-_TAIL_BYTES:]:
            return "truncated PNG (no IEND chunk)"
    elif data.startswith(b"BM") and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if len(data) < declared:
            return f"truncated BMP ({len(data)} of {declared} bytes)"
    return ""


# libjpeg's warnings about damaged pixel data. It decodes such a file anyway (a cut scan with an
# end marker appended comes out grey below the cut; garbled entropy-coded data as garbage blocks)
# and only prints the first warning to stderr. Warnings about metadata (an unknown JFIF version,
# an odd ICC marker, non-standard SOS parameters) leave the pixels intact and are passed on.
_JPEG_DAMAGE = re.compile(
    rb"(Corrupt JPEG data(?!: bad ICC marker)|Premature end of JPEG file"
    rb"|Inconsistent progression sequence)"
)


class _StderrCapture:
    """Run a native call with file descriptor 2 pointed at a private file; return what it wrote.

    OpenCV gives no other access to libjpeg's warnings. The redirect is process-wide, so calls
    are serialised by a lock; a decode of a 640x480 frame takes milliseconds and the redirect
    microseconds. Anything captured that is not a JPEG damage warning (another thread's output
    during the call) is written on to the real stderr afterwards.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd = -1  # an in-memory file, opened on first use in each process
        self._saved = -1  # the real stderr while fd 2 is redirected

    def reset(self) -> None:
        """In a forked child: a fresh lock and file, never the parent's (shared offset), and
        the real stderr back on fd 2 if another thread was decoding at the fork."""
        self._lock = threading.Lock()
        if self._saved >= 0:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = -1
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def _target(self) -> int:
        if self._fd < 0:
            if hasattr(os, "memfd_create"):
                self._fd = os.memfd_create("mer-prep-decoder-stderr", os.MFD_CLOEXEC)
            else:
                self._fd = os.dup(tempfile.TemporaryFile().fileno())
        return self._fd

    def run(self, call: Callable[[], np.ndarray | None]) -> tuple[np.ndarray | None, bytes]:
        with self._lock:
            target = self._target()
            try:
                saved = os.dup(2)
            except OSError:  # no stderr at all: leave fd 2 closed again afterwards
                saved = -1
            self._saved = saved
            os.dup2(target, 2)
            try:
                result = call()
            finally:
                self._saved = -1
                if saved >= 0:
                    os.dup2(saved, 2)
                    os.close(saved)
                else:
                    os.close(2)
            size = os.lseek(target, 0, os.SEEK_CUR)
            if not size:
                return result, b""
            os.lseek(target, 0, os.SEEK_SET)
            written = os.read(target, size)
            os.ftruncate(target, 0)
            os.lseek(target, 0, os.SEEK_SET)
        return result, written


_CAPTURE = _StderrCapture()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_CAPTURE.reset)


def _decode_jpeg(buffer: np.ndarray, flags: int) -> tuple[np.ndarray | None, str]:
    """cv2.imdecode of a JPEG, plus libjpeg's warning when the data was damaged (else "")."""
    image, written = _CAPTURE.run(lambda: cv2.imdecode(buffer, flags))
    damage, others = "", []
    for line in written.splitlines(keepends=True):
        if _JPEG_DAMAGE.search(line):
            damage = damage or line.decode("utf-8", "replace").strip()
        else:
            others.append(line)
    if others:
        try:
            os.write(2, b"".join(others))
        except OSError:
            pass
    return image, damage


def _decode_file(path: str, flags: int, sample: str) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise FrameIOError(
            "frame file does not exist", file=path, sample=sample, errno=exc.errno
        ) from None
    except OSError as exc:  # EIO, a timeout on a network file system, ...: it may pass
        raise FrameIOError(
            f"cannot read frame file: {exc.strerror or exc}",
            file=path,
            sample=sample,
            errno=exc.errno,
        ) from None
    if not data:
        raise FrameReadError("frame file is empty", file=path, sample=sample)
    problem = _truncation_problem(data)
    if problem:
        raise FrameReadError(problem, file=path, sample=sample)
    buffer = np.frombuffer(data, np.uint8)
    if data.startswith(_JPEG_SOI):
        image, damage = _decode_jpeg(buffer, flags)
        if damage:
            raise FrameReadError(f"corrupt JPEG data (decoder: {damage})", file=path, sample=sample)
    else:
        image = cv2.imdecode(buffer, flags)
    if image is None:
        raise FrameReadError(
            "cannot decode frame (corrupt or unsupported format)", file=path, sample=sample
        )
    return image


def read_frames(
    paths: Sequence[str | os.PathLike], *, gray: bool = False, sample: str = ""
) -> np.ndarray:
    """Decode exactly the image files in ``paths``, in the given order.

    Returns ``(N, H, W, 3)`` uint8 RGB, or ``(N, H, W)`` uint8 when ``gray`` (decoded straight
    to luma by libjpeg, which is faster than converting afterwards). Raises ``FrameReadError``
    naming the file and ``sample`` for a missing, unreadable, truncated or corrupt file, or a
    frame whose size differs from the first one. A JPEG counts as corrupt when libjpeg warns
    about its data (a scan cut short, garbled entropy-coded data), though it would decode.
    """
    if len(paths) == 0:
        raise ValueError("read_frames needs at least one path")
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR_RGB
    first = _decode_file(os.fspath(paths[0]), flags, sample)
    # Preallocate so N frames cost one allocation, not a list plus an np.stack copy.
    out = np.empty((len(paths), *first.shape), np.uint8)
    out[0] = first
    for i, path in enumerate(paths[1:], start=1):
        path = os.fspath(path)
        image = _decode_file(path, flags, sample)
        if image.shape != first.shape:
            raise FrameReadError(
                f"frame size {image.shape[1]}x{image.shape[0]} differs from "
                f"{first.shape[1]}x{first.shape[0]} of {os.fspath(paths[0])}",
                file=path,
                sample=sample,
            )
        out[i] = image
    return out


def read_depth_frames(
    paths: Sequence[str | os.PathLike], *, sample: str = "", size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode 16-bit depth frames (CAS(ME)^3 PNGs) as they are stored
    (``cv2.IMREAD_UNCHANGED``): ``(N, H, W)`` uint16, in the given order.

    size: ``(height, width)`` every frame must have (the colour frames' size, so that their
    alignment applies), else that of the first. Raises ``FrameReadError`` naming the file and
    ``sample`` for a missing, unreadable, truncated or corrupt file, one that is not a
    single-channel 16-bit image, or one of another size.
    """
    if len(paths) == 0:
        raise ValueError("read_depth_frames needs at least one path")
    out: np.ndarray | None = None
    for i, path in enumerate(paths):
        path = os.fspath(path)
        image = _decode_file(path, cv2.IMREAD_UNCHANGED, sample)
        if image.ndim != 2 or image.dtype != np.uint16:
            channels = 1 if image.ndim == 2 else image.shape[2]
            raise FrameReadError(
                f"depth frame is {image.dtype} with {channels} channel(s), "
                "expected single-channel uint16",
                file=path,
                sample=sample,
            )
        if out is None:
            expected = tuple(size) if size is not None else image.shape
            out = np.empty((len(paths), *expected), np.uint16)
        if image.shape != out.shape[1:]:
            raise FrameReadError(
                f"depth frame size {image.shape[1]}x{image.shape[0]} differs from the "
                f"frames' {out.shape[2]}x{out.shape[1]}",
                file=path,
                sample=sample,
            )
        out[i] = image
    return out


def _convert(frame: np.ndarray, gray: bool) -> np.ndarray:
    # VideoCapture always hands out BGR.
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB)


def read_video_frames(
    path: str | os.PathLike,
    indices: Sequence[int],
    *,
    gray: bool = False,
    sample: str = "",
    seek_gap: int | None = None,
) -> np.ndarray:
    """Decode the 0-based frames ``indices`` of a video file, returned in the order given.

    Returns ``(len(indices), H, W, 3)`` uint8 RGB, or ``(len(indices), H, W)`` when ``gray``.
    The stream is read only up to ``max(indices)``; frames in between are grabbed (demuxed and
    decoded) but never converted. ``seek_gap``: when set, gaps longer than this many frames are
    crossed with a container seek instead of grabbing; off by default because frame-accurate
    seeking depends on the container's timestamps. Raises ``FrameReadError`` naming the file,
    the sample and the frame index when the video cannot be opened or ends early.
    """
    file = os.fspath(path)
    if len(indices) == 0:
        raise ValueError("read_video_frames needs at least one frame index")
    wanted = sorted(set(int(i) for i in indices))
    if wanted[0] < 0:
        raise FrameReadError(f"negative frame index {wanted[0]}", file=file, sample=sample)
    if not os.path.isfile(file):
        raise FrameIOError("video file does not exist", file=file, sample=sample)
    capture = cv2.VideoCapture(file)
    try:
        if not capture.isOpened():
            raise FrameReadError("cannot open video", file=file, sample=sample)
        decoded: dict[int, np.ndarray] = {}
        position = 0
        for target in wanted:
            if seek_gap is not None and target - position > seek_gap:
                capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                position = target
            while position < target:
                if not capture.grab():
                    raise FrameReadError(
                        f"video ends at frame {position}; frame {target} was requested",
                        file=file,
                        sample=sample,
                    )
                position += 1
            ok, frame = capture.read()
            if not ok or frame is None:
                raise FrameReadError(
                    f"cannot decode frame {target} (video ends or is corrupt)",
                    file=file,
                    sample=sample,
                )
            position += 1
            decoded[target] = _convert(frame, gray)
    finally:
        capture.release()
    first = decoded[wanted[0]]
    out = np.empty((len(indices), *first.shape), np.uint8)
    for k, index in enumerate(indices):
        out[k] = decoded[int(index)]
    return out
