"""Pitched transcription: basic-pitch's nmp.onnx on ONNX Runtime, windowed and decoded here, streaming.

The model (Spotify's basic-pitch, ICASSP 2022, Apache-2.0; the file its PyPI wheel ships)
takes 43844 samples of mono audio at 22050 Hz and gives, for 172 frames 256 samples apart,
note and onset activations for the 88 piano keys (A0 = MIDI 21 up) and a pitch contour in
thirds of a semitone (264 bins from 27.5 Hz). None of basic-pitch's Python code runs here:
the file is found through the installed package's location without importing it.

Windowing: the audio is resampled to 22050 Hz in chunks (a polyphase filter with enough
context either side that the chunks join exactly), and windows advance by a whole number of
frames (``KEEP_FRAMES`` x 256 samples), so every kept frame sits on one global grid, frame
k at sample k x 256, with no per-window drift. Of each window's 172 frames the middle
``KEEP_FRAMES`` are kept; the edges, where the model sees half its context, are dropped.
The first window starts before time 0 on zeros and the last one runs past the end on
zeros, so the first and last frames of the file are covered like any other. Windows are run
in batches; only a batch of audio and the decoder's per-pitch state are held, so memory is
flat for any length.

Velocity comes from the note's amplitude: the peak magnitude of the fundamental in a
2048-sample Hann window (a DFT at the key's frequency) over the note's first frames, in dB, mapped on the General MIDI
velocity curve (level proportional to the square of the velocity: 40 dB from 1 to 127).
Pitch bends come from the contour: its peak near the note's pitch (within 2 semitones),
refined between bins, median-smoothed over 5 frames; a note whose contour strays by
``BEND_MIN_ST`` or more gets the curve as (time, semitones) points.
"""

import importlib.util
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.signal import medfilt, resample_poly

from auracore.errors import ModelError
from auracore.offline.pipeline import blas_on_this_thread, model_threads

from .decode import decode_block, new_state
from .notes import Note

MODEL_RATE = 22050
HOP = 256
GAP_MS = 35.0  # a note holds through gaps in its activation up to this long
WINDOW = 43844
WINDOW_FRAMES = 172
PITCHES = 88
LOWEST_PITCH = 21  # MIDI number of the model's first key, A0
CONTOUR_BINS_PER_ST = 3
KEEP_FRAMES = 160
MARGIN_FRAMES = (WINDOW_FRAMES - KEEP_FRAMES) // 2
BATCH_WINDOWS = 4
# a window whose samples all lie below this (-80 dBFS) is silence: the model is not run on it
SILENT_PEAK = 1e-4
FFT_SIZE = 2048
# The model's frame k describes audio near sample k * HOP + FRAME_LAG_SAMPLES (measured here on
# rendered notes: see docs/transcribe.md).
FRAME_LAG_SAMPLES = -236
BEND_MIN_ST = 0.3
BEND_STEP_ST = 0.05
BEND_SEARCH_BINS = 6
HISTORY_FRAMES = 4096
VELOCITY_LOUD = 112  # the velocity of the loud notes (the 95th percentile of note levels)
VELOCITY_RANGE_DB = 40.0  # GM: level proportional to velocity squared, 1..127 spans about 40 dB
GLIDE_GAP_S = 0.1
GLIDE_REACH = 0.5  # the share of the interval the bend covers where the note ends
GLIDE_EARLY = 0.25  # ... and GLIDE_LEAD_S before that
GLIDE_LEAD_S = 0.05


def model_path() -> str:
    """The nmp.onnx file of the installed basic-pitch package; ModelError when it is missing."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("basic-pitch is not installed (its model file nmp.onnx is needed): "
                         "pip install --no-deps basic-pitch")
    path = os.path.join(list(spec.submodule_search_locations)[0], "saved_models", "icassp_2022", "nmp.onnx")
    if not os.path.isfile(path):
        raise ModelError(f"model file missing: {path}; reinstall with pip install --no-deps basic-pitch")
    return path


_SESSION = None


def model_session():
    """The model's ONNX Runtime session (CUDA when present, else CPU), opened once."""
    global _SESSION
    if _SESSION is None:
        from auracore.models.runtime import open_session

        _SESSION = open_session(model_path(), threads=model_threads())
    return _SESSION


class StreamResampler:
    """Mono audio in blocks of any size at rate_in -> the same at rate_out, equal to
    resampling the whole signal at once with scipy's resample_poly (chunks overlap by more
    than the filter's reach)."""

    CHUNK = 1 << 16

    def __init__(self, rate_in: int, rate_out: int):
        g = math.gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        reach = 10 * max(self.up, self.down) // self.up + 16  # resample_poly's half filter, input samples
        self.margin = self.down * -(-reach // self.down)
        self.chunk = self.down * -(-self.CHUNK // self.down)
        self.buf = np.zeros(self.margin)  # zeros before time 0, as resample_poly pads
        self.done_in = 0  # input samples (from time 0) already resampled
        self.total_in = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """x: (n,) float -> the output samples now complete."""
        self.buf = np.concatenate((self.buf, np.asarray(x, dtype=np.float64)))
        self.total_in += len(x)
        out = []
        while len(self.buf) >= 2 * self.margin + self.chunk:
            out.append(self._run(self.chunk))
        return np.concatenate(out) if out else np.zeros(0)

    def finish(self) -> np.ndarray:
        """The rest: ceil(total_in * up / down) output samples in all."""
        remaining = self.total_in - self.done_in
        want_total = -(-self.total_in * self.up // self.down)
        made = self.done_in * self.up // self.down
        if remaining <= 0:
            return np.zeros(max(0, want_total - made))
        n = self.down * -(-remaining // self.down)
        self.buf = np.concatenate((self.buf, np.zeros(n + self.margin - (len(self.buf) - self.margin))))
        y = self._run(n)
        return y[:want_total - made]

    def _run(self, n: int) -> np.ndarray:
        seg = self.buf[:2 * self.margin + n]
        y = resample_poly(seg, self.up, self.down)
        lead = self.margin * self.up // self.down
        out = y[lead:lead + n * self.up // self.down]
        self.buf = self.buf[n:]
        self.done_in += n
        return out


def _bin_tables():
    offsets = np.arange(-BEND_SEARCH_BINS, BEND_SEARCH_BINS + 1)
    # the key's own contour bin is the middle one of its three (the first bin lies a third below A0)
    contour_bins = (CONTOUR_BINS_PER_ST * np.arange(PITCHES) + 1)[:, None] + offsets[None, :]
    valid = (contour_bins >= 0) & (contour_bins < PITCHES * CONTOUR_BINS_PER_ST)
    return contour_bins.clip(0, PITCHES * CONTOUR_BINS_PER_ST - 1), valid, offsets


CONTOUR_IDX, CONTOUR_VALID, CONTOUR_OFFSETS = _bin_tables()
HANN = np.hanning(FFT_SIZE + 1)[:FFT_SIZE]
HANN_GAIN = HANN.sum() / 2.0  # a full-scale sine's peak magnitude
_PHASE = 2.0 * np.pi * np.arange(FFT_SIZE)[:, None] * (440.0 * 2.0 ** ((np.arange(PITCHES) + LOWEST_PITCH - 69) / 12.0)) / MODEL_RATE
KEY_DFT = (np.concatenate((np.cos(_PHASE), np.sin(_PHASE)), axis=1) * (HANN / HANN_GAIN)[:, None]).astype(np.float32)


def with_velocities(notes: list, levels_db: list) -> list:
    """Notes given velocities from their fundamental levels (dB) on the GM curve, the 95th
    percentile level at VELOCITY_LOUD, so the dynamics between notes are kept."""
    if not notes:
        return []
    ref_db = float(np.percentile(levels_db, 95))
    return [Note(n.onset_s, n.offset_s, n.pitch,
                 int(np.clip(round(VELOCITY_LOUD * 10.0 ** ((lv - ref_db) / VELOCITY_RANGE_DB)), 1, 127)), n.bends)
            for n, lv in zip(notes, levels_db)]


def merge_glides(notes: list) -> list:
    """Notes by onset, with a glide made one note: where a note bends toward a key one or two
    semitones away and a note at that key starts within GLIDE_GAP_S of its end, the second
    is folded into the first as the rest of its bend curve."""
    notes = sorted(notes, key=lambda n: (n.onset_s, n.pitch))
    out: list[Note] = []
    for n in notes:
        merged = False
        for i in range(len(out) - 1, -1, -1):
            a = out[i]
            if a.offset_s < n.onset_s - GLIDE_GAP_S:
                if n.onset_s - a.offset_s > 5.0:
                    break
                continue
            d = n.pitch - a.pitch
            if not (1 <= abs(d) <= 2) or not a.bends or abs(a.offset_s - n.onset_s) > GLIDE_GAP_S:
                continue
            last = a.bends[-1][1]
            earlier = _bend_at(a.bends, a.offset_s - GLIDE_LEAD_S)
            # a glide is under way well before the next key takes over; a release that
            # overlaps the next note's attack only leans toward it in the last frames
            if last * d <= 0 or abs(last) < GLIDE_REACH * abs(d) or earlier * d < GLIDE_EARLY * d * d:
                continue
            bends = tuple(b for b in a.bends if b[0] < n.onset_s) + tuple((t, round(s + d, 3)) for t, s in n.bends)
            if not n.bends:
                bends += ((n.onset_s, float(d)),)
            out[i] = Note(a.onset_s, max(a.offset_s, n.offset_s), a.pitch, a.velocity, bends)
            merged = True
            break
        if not merged:
            out.append(n)
    return out


def _bend_at(bends: tuple, t_s: float) -> float:
    """The bend (semitones) in force at t_s: the last point at or before it, else 0."""
    value = 0.0
    for t, s in bends:
        if t > t_s:
            break
        value = s
    return value


def hz_to_pitch_index(freq_hz: float) -> float:
    """Model pitch index (0 = A0) of a frequency."""
    return 12.0 * math.log2(freq_hz / 440.0) + 69 - LOWEST_PITCH


class PitchedTranscriber:
    """Streaming pitched transcription: ``process(y)`` any number of times with mono audio at
    22050 Hz (``MODEL_RATE``; ``StreamResampler`` gets it there), then ``finish()`` for the
    notes (onset order)."""

    def __init__(self, sample_rate: int = MODEL_RATE, onset_threshold: float = 0.7, frame_threshold: float = 0.3,
                 min_note_ms: float = 58.0, min_hz: float | None = None, max_hz: float | None = None,
                 sustain_threshold: float = 0.8, gap_ms: float = GAP_MS, release_ratio: float = 0.0,
                 session=None):
        if int(sample_rate) != MODEL_RATE:
            raise ValueError(f"the model runs at {MODEL_RATE} Hz, not {sample_rate}")
        self.session = session or model_session()
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.order = self._output_order()
        self.frame_s = HOP / MODEL_RATE
        self.params = (float(onset_threshold), float(frame_threshold), float(sustain_threshold),
                       float(max(1, round(min_note_ms / 1000.0 / self.frame_s))),
                       float(max(0, round(gap_ms / 1000.0 / self.frame_s))), float(release_ratio))
        self.lo = 0 if min_hz is None else int(np.clip(math.ceil(hz_to_pitch_index(min_hz) - 0.5), 0, PITCHES))
        self.hi = PITCHES if max_hz is None else int(np.clip(math.floor(hz_to_pitch_index(max_hz) + 0.5) + 1, 0, PITCHES))
        self.state = new_state(PITCHES)
        # audio at 22050 Hz from sample buf_start on; the first window starts MARGIN frames early
        self.buf = np.zeros(MARGIN_FRAMES * HOP, dtype=np.float32)
        self.buf_start = -MARGIN_FRAMES * HOP
        self.samples_in = 0  # 22050 Hz samples received
        self.next_frame = 0  # global index of the first frame not yet decoded
        self.pending = None  # the last decoded-ahead frame (lookahead row), per array
        self.history = np.zeros((HISTORY_FRAMES, PITCHES), dtype=np.float32)  # bend curves, ring
        self.notes: list[Note] = []
        self.levels_db: list[float] = []
        self.windows_run = 0
        self.worker = None  # one thread for the model runs
        self.running = None  # (future, batch, final) of the batch in the model

    def _output_order(self) -> tuple[int, int, int]:
        """Indices of (note, onset, contour) among the session's outputs, by shape and name."""
        shapes = [o.shape[-1] for o in self.session.get_outputs()]
        contour = shapes.index(PITCHES * CONTOUR_BINS_PER_ST)
        # basic-pitch's export: StatefulPartitionedCall:1 is the note activation, :2 the onsets
        names = self.output_names
        note = next(i for i, n in enumerate(names) if n.endswith(":1"))
        onset = next(i for i, n in enumerate(names) if n.endswith(":2"))
        return note, onset, contour

    def process(self, y: np.ndarray) -> None:
        """y: (n,) float mono audio at 22050 Hz."""
        self._push(np.asarray(y))
        self._run_windows(final=False)

    def finish(self) -> list[Note]:
        """Run the tail and close every note still sounding; the notes, by onset."""
        self._run_windows(final=True)
        return merge_glides(with_velocities(self.notes, self.levels_db))

    @property
    def total_frames(self) -> int:
        """Frames that cover the audio received: one per hop, plus one past the end."""
        return -(-self.samples_in // HOP) + 1

    def _push(self, y: np.ndarray) -> None:
        if len(y):
            self.buf = np.concatenate((self.buf, y.astype(np.float32)))
            self.samples_in += len(y)

    def _window_start(self, w: int) -> int:
        return (w * KEEP_FRAMES - MARGIN_FRAMES) * HOP

    def _run_windows(self, final: bool) -> None:
        while True:
            w0 = self.windows_run
            ready = 0
            while ready < BATCH_WINDOWS and self._window_start(w0 + ready) + WINDOW <= self.buf_start + len(self.buf):
                ready += 1
            if final:
                needed = -(-self.total_frames // KEEP_FRAMES)
                ready = min(BATCH_WINDOWS, needed - w0)
                if ready <= 0:
                    self._complete()
                    self._decode(None, final=True)
                    if self.worker is not None:
                        self.worker.shutdown()
                        self.worker = None
                    return
            elif ready < BATCH_WINDOWS:
                return
            self._run_batch(w0, ready, final)

    def _run_batch(self, w0: int, count: int, final: bool) -> None:
        """Cut the batch's windows from the buffer and start the model on them in the worker
        thread (ONNX Runtime lets go of the GIL), then decode the batch before it: the model
        of one batch runs while the previous one is decoded."""
        starts = [self._window_start(w0 + i) - self.buf_start for i in range(count)]
        need = starts[-1] + WINDOW
        if need > len(self.buf):
            self.buf = np.concatenate((self.buf, np.zeros(need - len(self.buf), dtype=np.float32)))
        batch = np.stack([self.buf[s:s + WINDOW] for s in starts])
        self.windows_run += count
        next_start = self._window_start(self.windows_run) - self.buf_start
        self.buf = self.buf[next_start:]
        self.buf_start += next_start
        if self.worker is None:
            self.worker = ThreadPoolExecutor(max_workers=1)
        job = (self.worker.submit(self._model, batch), batch, final)
        self._complete()
        self.running = job

    def _complete(self) -> None:
        """Decode the batch whose model run is under way, if any."""
        if self.running is None:
            return
        future, batch, final = self.running
        self.running = None
        note, onset, contour = future.result()
        # levels and bend curves are needed only where a note can start or sound
        keys = np.flatnonzero((note.max(axis=0) >= 0.5 * self.params[1]) | (onset.max(axis=0) >= self.params[0]))
        mag = self._magnitudes(batch, keys)
        frames = np.stack([note, onset, mag], axis=0)
        dev = self._deviations(contour, keys)
        if final:
            limit = self.total_frames - self.next_frame - (0 if self.pending is None else 1)
            frames, dev = frames[:, :max(0, limit)], dev[:max(0, limit)]
        self._decode((frames, dev), final=False)

    def _model(self, batch: np.ndarray):
        """The kept frames of the model's note, onset and contour outputs for a batch of
        windows, (windows x KEEP_FRAMES, 88 / 88 / 264); silent windows give zeros unrun."""
        keep = slice(MARGIN_FRAMES, MARGIN_FRAMES + KEEP_FRAMES)
        sizes = (PITCHES, PITCHES, PITCHES * CONTOUR_BINS_PER_ST)
        out = [np.zeros((len(batch), KEEP_FRAMES, n), dtype=np.float32) for n in sizes]
        loud = np.flatnonzero(np.abs(batch).max(axis=1) >= SILENT_PEAK)
        if loud.size:
            res = self.session.run(self.output_names, {self.input_name: batch[loud][:, :, None]})
            for k in range(3):
                out[k][loud] = res[self.order[k]][:, keep]
        return [o.reshape(-1, n) for o, n in zip(out, sizes)]

    def _magnitudes(self, batch: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """(windows x KEEP_FRAMES, PITCHES) magnitude (full-scale sine = 1) of the keys'
        fundamentals (0 for other keys) in a Hann window centred on every kept frame: one
        product with a windowed DFT matrix at the keys' frequencies."""
        mag = np.zeros((len(batch) * KEEP_FRAMES, PITCHES), dtype=np.float32)
        if keys.size == 0:
            return mag
        first = MARGIN_FRAMES * HOP + FRAME_LAG_SAMPLES - FFT_SIZE // 2
        span = first + HOP * (KEEP_FRAMES - 1) + FFT_SIZE
        frames = np.lib.stride_tricks.sliding_window_view(batch[:, first:span], FFT_SIZE, axis=1)[:, ::HOP]
        with blas_on_this_thread():
            out = np.ascontiguousarray(frames).reshape(-1, FFT_SIZE) @ KEY_DFT[:, np.concatenate((keys, keys + PITCHES))]
        mag[:, keys] = np.hypot(out[:, :keys.size], out[:, keys.size:])
        return mag

    def _deviations(self, contour: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """(T, PITCHES) the contour's peak near each of the keys, in semitones from the key
        (0 for other keys)."""
        dev = np.zeros((contour.shape[0], PITCHES), dtype=np.float32)
        if keys.size == 0:
            return dev
        sub = contour[:, CONTOUR_IDX[keys]] * CONTOUR_VALID[keys]
        k = sub.argmax(axis=2)
        kc = k.clip(1, sub.shape[2] - 2)
        t_i, p_i = np.indices(k.shape)
        y0, y1, y2 = sub[t_i, p_i, kc - 1], sub[t_i, p_i, kc], sub[t_i, p_i, kc + 1]
        denom = y0 - 2.0 * y1 + y2
        frac = np.where(np.abs(denom) > 1e-9, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0.0)
        frac = np.where((k == kc), frac.clip(-0.5, 0.5), 0.0)
        dev[:, keys] = (CONTOUR_OFFSETS[k] + frac) / CONTOUR_BINS_PER_ST
        return dev

    def _decode(self, data, final: bool) -> None:
        if data is None:
            frames = np.zeros((3, 0, PITCHES), dtype=np.float32)
            dev = np.zeros((0, PITCHES), dtype=np.float32)
        else:
            frames, dev = data
        if self.pending is not None:
            frames = np.concatenate((self.pending[0], frames), axis=1)
            dev = np.concatenate((self.pending[1], dev), axis=0)
        if frames.shape[1] == 0:
            return
        if final:  # one row of zeros past the end: the onset test's lookahead
            rows = frames
            look = np.concatenate((rows, np.zeros((3, 1, PITCHES), dtype=np.float32)), axis=1)
            used_dev = dev
            self.pending = None
        else:
            look = frames
            used_dev = dev[:-1]
            self.pending = (frames[:, -1:], dev[-1:])
        t0 = self.next_frame
        T = look.shape[1] - 1
        for i in range(T):
            self.history[(t0 + i) % HISTORY_FRAMES] = used_dev[i]
        on, off, sus, min_f, gap, rel = self.params
        rows, n = decode_block(np.ascontiguousarray(look[0]), np.ascontiguousarray(look[1]),
                               np.ascontiguousarray(look[2]), t0, self.state, on, off, sus, min_f, gap, rel,
                               self.lo, self.hi, final)
        self.next_frame += T
        for row in rows[:n]:
            note, level_db = self._note(row)
            self.notes.append(note)
            self.levels_db.append(level_db)

    def _note(self, row) -> Note:
        p, start, end = int(row["pitch"]), int(row["start"]), int(row["end"])
        onset_s = max(0.0, (start * HOP + FRAME_LAG_SAMPLES) / MODEL_RATE)  # frame 0 lies just before time 0
        offset_s = (end * HOP + FRAME_LAG_SAMPLES) / MODEL_RATE
        level_db = 20.0 * math.log10(max(row["peak"], 1e-9))
        # the velocity is set in finish, relative to the loudest notes; the level rides along until then
        return Note(onset_s, offset_s, p + LOWEST_PITCH, 0, self._bends(p, start, end)), level_db

    def _bends(self, p: int, start: int, end: int) -> tuple:
        first = max(start, end - HISTORY_FRAMES, self.next_frame + 0 - HISTORY_FRAMES)
        if end - first < 3:
            return ()
        curve = self.history[np.arange(first, end) % HISTORY_FRAMES, p].astype(np.float64)
        if len(curve) >= 5:
            curve = medfilt(curve, 5)
        if np.max(np.abs(curve)) < BEND_MIN_ST:
            return ()
        points, last = [], 0.0
        for i, st in enumerate(curve):
            if abs(st - last) >= BEND_STEP_ST or (i == 0 and st != 0.0):
                points.append((((first + i) * HOP + FRAME_LAG_SAMPLES) / MODEL_RATE, float(round(st, 3))))
                last = st
        return tuple(points)
