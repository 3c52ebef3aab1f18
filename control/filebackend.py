"""The daemon's file backend: IN streamed through the live engine at real-time pace into OUT.

The blocks run through ``realtime.blockstream.BlockStream`` (the engine a device callback
runs, on the clocked loop); this module owns the files: IN opened and checked, OUT written
atomically, and OUT only when the whole of IN went through: a stream stopped before (a
signal, an error) leaves nothing behind. OUT is never IN, by any name.
"""

import soundfile as sf

from auracore.errors import AudioFileError
from auracore.offline.audio_io import (Quantizer, atomic_output, check_output_path, open_input, output_format,
                                       read_blocks, resolve_subtype)
from auracore.realtime.blockstream import BlockStream


class Incomplete(Exception):
    """The stream stopped before the end of its input: its output is discarded."""


class FileBackend:
    """Open IN, build the stream; use as a context manager around loop.start()/wait()."""

    def __init__(self, engine_factory, in_path: str, out_path: str, blocksize: int,
                 subtype: str | None = None, realtime: bool = True):
        check_output_path(out_path, inputs=(in_path,))  # before any work: refuse IN, folders, no permission
        self.in_path = in_path
        self.out_path = out_path
        self.subtype = subtype
        self._in = open_input(in_path)
        self.sample_rate = self._in.samplerate
        self.channels = self._in.channels
        self.engine = engine_factory(self.sample_rate, self.channels)
        self._quantizer = Quantizer(resolve_subtype(output_format(out_path), subtype))
        self._out = None
        self._ctx = None
        self.stream = BlockStream(self.engine, self._read(blocksize), self._write, blocksize, realtime=realtime)
        self.loop = self.stream.loop

    @property
    def complete(self) -> bool:
        return self.stream.complete

    def _read(self, blocksize: int):
        frames = 0
        for block in read_blocks(self._in, blocksize, self.in_path):
            frames += block.shape[0]
            yield block
        if frames < self._in.frames:
            raise AudioFileError(f"{self.in_path}: only {frames} of {self._in.frames} frames could be read; "
                                 "the file is truncated")

    def _write(self, block) -> None:
        try:
            self._out.write(self._quantizer.apply(block)[0])
        except (sf.LibsndfileError, OSError) as exc:
            raise AudioFileError(f"{self.out_path}: writing failed ({exc}; is the disk full?)") from None

    def open(self) -> "FileBackend":
        """Open OUT (a temporary file beside it until ``finish``)."""
        try:
            self._ctx = atomic_output(self.out_path, self.sample_rate, self.channels, self.subtype,
                                      inputs=(self.in_path,))
            self._out = self._ctx.__enter__()
        except BaseException:
            self._in.close()
            raise
        return self

    def finish(self, *exc) -> bool:
        """Stop the loop; rename OUT into place only if the stream is complete and no
        exception is passing (exc: an exception's type, value and traceback, as __exit__
        takes them), else remove it."""
        if not exc:
            exc = (None, None, None)
        self.loop.stop()
        self._in.close()
        if exc[0] is None and not (self.complete and self.loop.error is None):
            exc = (Incomplete, Incomplete(), None)
        ctx, self._ctx = self._ctx, None
        return ctx.__exit__(*exc) if ctx is not None else False

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        return self.finish(*exc)
