"""Audio file I/O for whole-file work: checked opening, block reading, atomic writing, dither."""

import os
import tempfile
from contextlib import contextmanager

import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3")
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 192000


class AudioFileError(Exception):
    """A file that cannot be read or written as audio; the message is one line for the user."""


def open_input(path: str, max_channels: int = 2) -> sf.SoundFile:
    """Open an audio file for block reading, checking rate and channel count.

    Raises AudioFileError with a one-line reason (missing, not audio, unsupported rate or
    channel layout, empty).
    """
    if not os.path.exists(path):
        raise AudioFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({_short(exc)})") from None
    if not MIN_RATE_HZ <= f.samplerate <= MAX_RATE_HZ:
        f.close()
        raise AudioFileError(
            f"{path}: sample rate {f.samplerate} Hz is outside {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    if f.channels > max_channels:
        f.close()
        raise AudioFileError(
            f"{path}: {f.channels} channels; this command takes mono or stereo "
            f"(split the file into pairs first, e.g. sox in.wav out.wav remix 1 2)")
    if f.frames == 0:
        f.close()
        raise AudioFileError(f"{path}: the file holds no audio frames")
    return f


def read_blocks(f: sf.SoundFile, blocksize: int):
    """Yield (frames, channels) float64 blocks; AudioFileError if the data is cut short."""
    try:
        while True:
            block = f.read(blocksize, dtype="float64", always_2d=True)
            if block.shape[0] == 0:
                return
            yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{f.name}: read failed part-way ({_short(exc)}); the file may be truncated") from None


def output_format(path: str) -> str:
    """libsndfile major format for an output path, from its extension."""
    ext = os.path.splitext(path)[1].lower()
    table = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".aif": "AIFF",
             ".aiff": "AIFF", ".aifc": "AIFF", ".mp3": "MP3"}
    if ext not in table:
        raise AudioFileError(f"{path}: unknown output type '{ext or '(none)'}'; use one of "
                             + ", ".join(sorted(set(table))))
    return table[ext]


def resolve_subtype(fmt: str, subtype: str | None) -> str | None:
    """The libsndfile subtype to write: the request where the format allows it."""
    if fmt in ("OGG", "MP3"):
        return None  # lossy: the encoder decides
    if subtype is None:
        subtype = "PCM_24"
    if fmt == "FLAC" and subtype == "FLOAT":
        raise AudioFileError("FLAC cannot hold FLOAT samples; use PCM_16 or PCM_24")
    return subtype


@contextmanager
def atomic_output(path: str, samplerate: int, channels: int, subtype: str | None):
    """A SoundFile open on a temporary file beside path, renamed over path only on success.

    On any exception (Ctrl-C included) the temporary file is removed and nothing is left.
    """
    fmt = output_format(path)
    sub = resolve_subtype(fmt, subtype)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AudioFileError(f"{path}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".auracore-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        try:
            out = sf.SoundFile(tmp, "w", samplerate=samplerate, channels=channels, format=fmt, subtype=sub)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioFileError(f"{path}: cannot write this format ({_short(exc)})") from None
        with out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Quantizer:
    """Word-length reduction for fixed-point output: TPDF dither of +-1 LSB, rounding to
    the nearest step and clipping, done here rather than by libsndfile (which truncates,
    a -0.5 LSB bias). Seeded, so renders repeat exactly."""

    def __init__(self, subtype: str | None, seed: int = 0x5EED):
        self.bits = {"PCM_16": 16, "PCM_24": 24}.get(subtype or "", 0)
        self.rng = np.random.default_rng(seed)

    def apply(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(what to write, its value as float64 in [-1, 1)) for block: (frames, channels)."""
        if not self.bits:
            return block, block
        full = 2.0 ** (self.bits - 1)
        noise = self.rng.random(block.shape) - self.rng.random(block.shape)
        q = np.clip(np.rint(block * full + noise), -full, full - 1)
        if self.bits == 16:
            return q.astype(np.int16), q / full
        # 24-bit: libsndfile takes the top 24 bits of int32 samples
        return (q.astype(np.int32) << 8), q / full


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
