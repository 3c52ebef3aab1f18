"""Audio file I/O for whole-file work: checked opening, block reading, atomic writing, dither.

The one module that touches audio files: steps take arrays, and the commands read and write
through here. Outputs are written to a temporary file beside their destination and renamed
into place only when complete (``atomic_output``), never over an input, with the user's
umask (or the replaced file's mode), and through a symlinked destination to its target.
"""

import errno
import os
import struct
import tempfile
from contextlib import contextmanager

import numpy as np
import soundfile as sf

from auracore.errors import AudioFileError
from auracore.kernels.quantize import pack24, quantize
from auracore.stopping import holding_stops, raise_if_stopped

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3")
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
MIN_RATE_HZ = 8000
MAX_RATE_HZ = 192000
TEMP_PREFIX = ".auracore-"


def _sfname(path: str) -> bytes:
    """The path as bytes for libsndfile: names that are not UTF-8 (kept by Python as
    surrogate escapes) reach the file system unchanged instead of failing to encode."""
    return os.fsencode(path)


@contextmanager
def _quiet_decoder(path: str):
    """Silence libmpg123's own messages on fd 2 while it decodes an MP3 (it prints notes on
    bad frames; the user gets our one line instead). Other formats are left alone."""
    if not str(path).lower().endswith(".mp3"):
        yield
        return
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def input_problem(path: str, wanted: str) -> str | None:
    """Why path cannot be read as an input file (missing, a dangling link, a folder, a pipe
    or device, no permission), for a one-line message; None when it can. wanted names
    what to give instead, e.g. "an audio file"."""
    if not os.path.lexists(path):
        return "no such file"
    if not os.path.exists(path):
        return "a symbolic link to a file that does not exist"
    if os.path.isdir(path):
        return f"is a folder; give {wanted}"
    if not os.path.isfile(path):
        return f"not a regular file (a pipe or a device?); give {wanted}"
    if not os.access(path, os.R_OK):
        return "no permission to read it"
    return None


def is_empty_audio(path: str) -> bool:
    """True for a readable audio file that holds no frames (open_input refuses those; a
    command may make an empty result of one)."""
    if input_problem(path, "an audio file"):
        return False
    try:
        with _quiet_decoder(path):
            return sf.info(_sfname(path)).frames == 0
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return False


def open_input(path: str, max_channels: int = 2) -> sf.SoundFile:
    """Open an audio file for block reading, checking rate and channel count.

    Raises AudioFileError with a one-line reason (missing, not audio, unsupported rate or
    channel layout, empty).
    """
    problem = input_problem(path, "an audio file")
    if problem:
        raise AudioFileError(f"{path}: {problem}")
    try:
        with _quiet_decoder(path):
            f = sf.SoundFile(_sfname(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    if not MIN_RATE_HZ <= f.samplerate <= MAX_RATE_HZ:
        f.close()
        raise AudioFileError(
            f"{path}: sample rate {f.samplerate} Hz is outside {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    if f.channels > max_channels:
        f.close()
        raise AudioFileError(
            f"{path}: {f.channels} channels; this command takes mono or stereo "
            f"(split the file into pairs first, e.g. sox in.wav out.wav remix 1 2)")
    if f.frames <= 0:
        f.close()
        raise AudioFileError(f"{path}: the file holds no audio frames")
    return f


# encodings whose every sample libsndfile gives exactly in single precision (integers of up
# to 24 bits scaled by a power of two, and float files): for them a float32 read widened by
# numpy is the float64 read to the bit, in 0.03 s instead of 0.08 s for 300 s of stereo
EXACT_IN_FLOAT32 = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "FLOAT", "ULAW", "ALAW"})


def read_blocks(f: sf.SoundFile, blocksize: int, path: str | None = None, native: bool = False):
    """Yield (frames, channels) float64 blocks; AudioFileError if the data is cut short.
    native=True: the encodings of EXACT_IN_FLOAT32 come as the float32 blocks read (each
    sample the float64 read's, to the bit), for a caller that widens only what needs it."""
    name = path if path is not None else os.fsdecode(f.name)
    single = f.subtype in EXACT_IN_FLOAT32
    try:
        while True:
            with _quiet_decoder(name):
                block = f.read(blocksize, dtype="float32" if single else "float64", always_2d=True)
            if block.shape[0] == 0:
                return
            yield block.astype(np.float64) if single and not native else block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"{name}: read failed part-way ({_reason(exc)}); the file may be truncated") from None


def load(path: str, max_channels: int = 2) -> tuple[np.ndarray, int]:
    """The whole file as (frames, channels) float64 in [-1, 1], and its sample rate in Hz.

    Raises AudioFileError (missing, not audio, unsupported rate or channels, truncated).
    For long files prefer ``open_input`` + ``read_blocks``: memory stays flat.
    """
    with open_input(path, max_channels=max_channels) as f:
        parts = list(read_blocks(f, 1 << 16, path))
        if sum(p.shape[0] for p in parts) < f.frames:
            raise AudioFileError(f"{path}: only part of the file could be read; it is truncated")
        return np.concatenate(parts, axis=0), f.samplerate


def save(path: str, x: np.ndarray, sample_rate: int, subtype: str | None = None,
         inputs: tuple = ()) -> None:
    """Write x: (frames, channels) or (frames,) float to path atomically, in the format of
    its extension (subtype PCM_16, PCM_24 (default) or FLOAT; TPDF dither when cutting word
    length). inputs: paths the output must not be (refused, never overwritten).
    Raises AudioFileError."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise AudioFileError(f"{path}: audio must be (frames, channels), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise AudioFileError(f"{path}: the audio holds NaN or infinite samples")
    quantizer = Quantizer(resolve_subtype(output_format(path), subtype))
    with atomic_output(path, int(sample_rate), x.shape[1], subtype, inputs=inputs) as out:
        for start in range(0, x.shape[0], 1 << 16):
            out.write(quantizer.apply(x[start:start + (1 << 16)])[0])


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
    if subtype not in SUBTYPES:
        raise AudioFileError(f"sample format {subtype!r}: use one of {', '.join(SUBTYPES)}")
    if fmt == "FLAC" and subtype == "FLOAT":
        raise AudioFileError("FLAC cannot hold FLOAT samples; use PCM_16 or PCM_24")
    return subtype


def _same_file(a: str, b: str) -> bool:
    """True when paths a and b name one file (symlinks, ./ prefixes and hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def make_output_folder(path: str, what: str) -> bool:
    """Make the output folder path when missing (its parent must exist); True when this call
    made it (so a failed run can remove it again). what names the outputs, for the message
    ("the stems"). AudioFileError for a path that is something else or cannot be made."""
    if os.path.isdir(path):
        return False
    if os.path.lexists(path):
        raise AudioFileError(f"{path}: exists and is not a folder; give a folder for {what}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise AudioFileError(f"{path}: the folder {parent} does not exist")
    try:
        os.mkdir(path)
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot make the folder ({exc.strerror})") from None
    return True


def check_output_path(path: str, inputs: tuple = ()) -> str:
    """Check that path can take a new output file and return where to write it: the
    symlink's target when path is a symlink, else path. AudioFileError, with the reason,
    for an input (by any name), a folder, a missing or unwritable folder, or a name too long."""
    for src in inputs:
        if src is not None and os.path.exists(path) and _same_file(src, path):
            raise AudioFileError(f"{path}: this is the input file: refusing to overwrite the input (choose another output path)")
    target = os.path.realpath(path) if os.path.islink(path) else path
    if os.path.isdir(target):
        raise AudioFileError(f"{path}: is a folder; give a file name for the output")
    if os.path.exists(target) and not os.path.isfile(target):
        raise AudioFileError(f"{path}: not a regular file (a pipe or a device?); give a file name for the output")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise AudioFileError(f"{path}: the folder {folder} does not exist")
    name = os.fsencode(os.path.basename(target))
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(name) > name_max:
        raise AudioFileError(f"{path}: the file name is {len(name)} bytes; this file system allows {name_max}")
    if _read_only(folder):
        raise AudioFileError(f"{path}: {folder} is on a read-only file system")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AudioFileError(f"{path}: no permission to write in {folder}")
    return target


def _read_only(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _full(folder: str) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _final_mode(target: str) -> int:
    """The mode a new output gets: the replaced file's, else 0666 less the umask."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_file(path: str, inputs: tuple = (), suffix: str | None = None):
    """A temporary file path beside path's destination, renamed over it only when the block
    finishes without an exception; on any exception (Ctrl-C, SIGTERM included) it is removed
    and nothing is left. Yields the temporary path. Raises AudioFileError for an output that
    cannot be written (see check_output_path) or a write that fails (a full disk)."""
    target = check_output_path(path, inputs)
    folder = os.path.dirname(os.path.abspath(target))
    suffix = os.path.splitext(target)[1] if suffix is None else suffix
    tmp = None
    try:
        try:
            # made and known to the cleanup below as one step: a stop that landed between the
            # two once left the temporary file behind (the fuzz suite, normalize with SIGINT)
            with holding_stops():
                fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=folder)
                os.close(fd)
        except OSError as exc:
            raise AudioFileError(f"{path}: cannot write in {folder} ({_os_reason(exc)})") from None
        try:
            yield tmp
            raise_if_stopped()  # a stop whose first raise a destructor swallowed: nothing is committed
            os.chmod(tmp, _final_mode(target))
            os.replace(tmp, target)
        except OSError as exc:
            raise AudioFileError(f"{path}: writing failed ({_os_reason(exc)})") from None
        except (sf.LibsndfileError, AssertionError) as exc:  # soundfile asserts on a short write
            why = "no space left on the device" if _full(folder) else f"{_reason(exc) or 'short write'}; is the disk full?"
            raise AudioFileError(f"{path}: writing failed ({why})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_output(path: str, samplerate: int, channels: int, subtype: str | None, inputs: tuple = ()):
    """A SoundFile open on a temporary file beside path, renamed over path only on success
    (see atomic_file). inputs: paths the output must not be."""
    with atomic_file(path, inputs) as tmp, open_output(tmp, path, samplerate, channels, subtype) as out:
        yield out


def open_output(tmp: str, path: str, samplerate: int, channels: int, subtype: str | None):
    """A writer open on tmp (a temporary file from ``atomic_file``; emptied first) in path's
    format: ``PcmWav`` for 16- and 24-bit WAV of one or two channels, else a SoundFile.
    Either takes write(block) and closes as a context manager. AudioFileError, naming path,
    when the format cannot be written."""
    fmt = output_format(path)
    sub = resolve_subtype(fmt, subtype)
    if fmt == "WAV" and sub in PcmWav.BITS and channels in (1, 2):
        return PcmWav(tmp, samplerate, channels, sub)
    try:
        return sf.SoundFile(_sfname(tmp), "w", samplerate=samplerate, channels=channels, format=fmt, subtype=sub)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioFileError(f"{path}: cannot write this format ({_reason(exc)})") from None


class PcmWav:
    """A 16- or 24-bit PCM WAV file of one or two channels written directly, byte for byte
    the file libsndfile writes (its 44-byte header, a pad byte after odd data), from the
    integers ``Quantizer`` gives: int16, or int32 carrying the 24 bits at the top.
    libsndfile's own conversion of int32 to 3-byte samples took 7 times as long as writing
    the bytes (3 minutes of stereo: 0.11 s against 0.015 s); ``kernels.quantize.pack24``
    packs them in one loop. A RIFF file holds at most 4 GiB: a longer stream raises
    AudioFileError (FLAC holds any length)."""

    BITS = {"PCM_16": 16, "PCM_24": 24}
    LIMIT = 0xFFFFFFFF - 36 - 1

    def __init__(self, path: str, samplerate: int, channels: int, subtype: str):
        self.path = path
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.bits = self.BITS[subtype]
        self.frames = 0
        self._size = 0
        # an empty file (atomic_file's) is written without O_TRUNC: on ext4 truncating a
        # file to nothing forces its delayed allocation when it closes (0.045 s for 10
        # minutes' output here, the data sent to the disk at once)
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        self._file = open(path, "r+b" if empty else "wb")
        try:
            self._file.write(self._header())
        except BaseException:
            self._file.close()
            raise

    def _header(self) -> bytes:
        width = self.bits // 8
        riff = 36 + self._size + (self._size & 1)
        return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, self.channels,
                           self.samplerate, self.samplerate * self.channels * width, self.channels * width,
                           self.bits, b"data", self._size)

    def write(self, data: np.ndarray) -> None:
        """data: (frames, channels) int16 (16-bit) or int32 with the sample in its top 24 bits."""
        want = np.int16 if self.bits == 16 else np.int32
        if data.dtype != want or data.ndim != 2 or data.shape[1] != self.channels:
            raise ValueError(f"PcmWav({self.bits} bits) takes (frames, {self.channels}) {np.dtype(want).name} blocks")
        if self.bits == 24:
            raw = np.empty(data.size * 3, dtype=np.uint8)
            pack24(np.ascontiguousarray(data), raw)
        else:
            raw = np.ascontiguousarray(data, dtype=np.dtype("<i2")).view(np.uint8)
        if self._size + raw.nbytes > self.LIMIT:
            raise AudioFileError(f"{self.path}: a WAV file holds at most 4 GiB; write FLAC for longer output")
        self._file.write(raw.data.cast("B"))
        self._size += raw.nbytes
        self.frames += data.shape[0]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self._size & 1:
                self._file.write(b"\0")
            self._file.seek(0)
            self._file.write(self._header())
        finally:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Quantizer:
    """Word-length reduction for fixed-point output: TPDF dither of +-1 LSB, rounding to
    the nearest step and clipping, done here rather than by libsndfile (which truncates,
    a -0.5 LSB bias). The dither is counter-based (``kernels.quantize``): each sample of the
    stream has its own, from the seed and its position, so a stream gets the same dither
    however it is split into blocks, and renders repeat exactly."""

    def __init__(self, subtype: str | None, seed: int = 0x5EED):
        self.bits = {"PCM_16": 16, "PCM_24": 24}.get(subtype or "", 0)
        self.seed = int(seed)
        self._position = 0   # stream samples (frames x channels) dithered so far

    def apply(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(what to write, its value as float64 in [-1, 1)) for block: (frames, channels)."""
        if not self.bits:
            return block, block
        full = 2.0 ** (self.bits - 1)
        start = self._position
        self._position += block.size
        block = np.ascontiguousarray(block, dtype=np.float64)
        out = np.empty(block.shape, dtype=np.int16 if self.bits == 16 else np.int32)
        value = np.empty(block.shape)
        # 24-bit: libsndfile takes the top 24 bits of int32 samples
        quantize(block, full, 0 if self.bits == 16 else 8, self.seed, start, out, value)
        return out, value


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "no space left on the device" if exc.errno != errno.EFBIG else "file size limit reached"
    return exc.strerror or type(exc).__name__


def _reason(exc: Exception) -> str:
    """libsndfile's message, first line, without its misleading generic text."""
    text = str(exc).strip().splitlines()
    text = text[0] if text else type(exc).__name__
    # libsndfile says this of every file it cannot recognise, existing regular ones included
    text = text.replace("File does not exist or is not a regular file (possibly a pipe?).",
                        "format not recognised or data corrupt")
    if text.startswith("Error opening "):
        text = text.split(": ", 1)[-1]
    return text
