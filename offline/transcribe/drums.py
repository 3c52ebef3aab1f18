"""Drum transcription: onsets from band-wise spectral flux, each hit split into kit pieces by spectral shape.

Audio (mono, 22050 Hz, streamed) -> a 1024-point Hann STFT every 128 samples (5.8 ms) ->
power in 13 bands from 20 Hz to 11 kHz (about two per octave). Onsets are peaks (the
largest within +-3 frames) of the summed, half-wave rectified rise of the band levels (dB
over two frames) that stand ``ONSET_RISE_DB`` above their +-24-frame mean, at least
``MIN_GAP_S`` apart, and within ``FLOOR_DB`` of the loudest hit so far. At each onset the
energy that arrived (the band power's peak over the next ``ATTACK_S`` less its mean over
the ``PRE_S`` before) is fitted, by non-negative least squares weighted for relative error,
with the band shapes of the kit pieces (kick, snare, hi-hat, low, mid and high tom, crash
cymbal) of each kit in ``KIT_TEMPLATES_DB``, and the kit that fits best classifies the hit. A piece is hit when it explains ``MIN_SHARE`` of the new energy in
its home bands (those within ``HOME_DB`` of its loudest; for the hi-hat the top band, where
kicks and snares hardly reach). Hi-hats are then closed or open by how far the top bands
fall in the ``OPEN_HAT_CHECK_MS`` after the hit (``OPEN_HAT_DROP_DB``). Hits are GM drum notes (36 kick, 38 snare, 42/46 closed/open hat,
41/45/48 toms, 49 crash) on channel 10, velocity from the hit's level on the GM curve.

The templates are the new-energy band shapes of single hits of FluidR3_GM's seven kits
(standard, room, power, electronic, TR-808, jazz, brush) at velocity 100 (measured by
``measure_template`` through bench/drum_templates.py; see docs/transcribe.md); kits that
sound very differently from all of them split less well. A ride cymbal has no template of its own (its shape
lies too close to the hi-hat's to tell them apart this way): it is written as a hi-hat. Memory is flat: frames are kept only for a chunk and its
context.
"""

import math

import numpy as np
from scipy.optimize import nnls

from auracore.offline.pipeline import blas_on_this_thread

from .notes import Note

RATE = 22050
FFT_SIZE = 1024
HOP = 128
BAND_EDGES_HZ = (20, 60, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 11025)
ONSET_RISE_DB = 24.0  # summed over the 13 bands
FLOOR_DB = 45.0
MIN_GAP_S = 0.03
# the flux peaks this much before the hit (a centred frame hears the attack early); measured
# on rendered kits, the median onset error of the uncorrected detector
ONSET_LAG_S = 0.0066
ATTACK_S = 0.06
PRE_S = 0.03
# a closed hi-hat falls about 24 dB in its first 120 ms, an open one about 5 (FluidR3_GM)
OPEN_HAT_CHECK_MS = 120.0
OPEN_HAT_DROP_DB = 12.0
MIN_SHARE = 0.35
CHUNK_FRAMES = 2048
CONTEXT_FRAMES = 256  # either side: the local mean, the attack, and the open-hat ring
# piece -> GM drum note
GM_NOTE = {"kick": 36, "snare": 38, "closed_hat": 42, "open_hat": 46, "low_tom": 41, "mid_tom": 45,
           "high_tom": 48, "crash": 49}
# the GM note whose single hit gives each template (bench/drum_templates.py)
TEMPLATE_NOTES = {"kick": 36, "snare": 38, "hat": 42, "low_tom": 41, "mid_tom": 45, "high_tom": 48, "crash": 49}
# new-energy band shapes (dB re the loudest band), bands as BAND_EDGES_HZ, of single hits of
# FluidR3_GM's kits by bank-128 program (bench/drum_templates.py prints this table): every
# piece of the standard kit (0), the KIT_PIECES of the others
KIT_TEMPLATES_DB = {
    0: {
        "kick": (-3.7, -0.6, 0.0, -9.6, -19.7, -21.3, -27.3, -27.8, -18.5, -17.3, -19.3, -27.0, -51.9),
        "snare": (-27.4, -26.5, -13.9, 0.0, -10.4, -8.9, -14.1, -16.8, -16.3, -17.4, -16.5, -20.6, -39.0),
        "hat": (-35.8, -34.8, -22.6, -11.4, -10.2, -14.0, -11.3, -11.4, -9.6, -0.4, 0.0, -0.7, -7.2),
        "low_tom": (-4.0, 0.0, -1.4, -0.7, -6.3, -11.6, -8.4, -8.8, -9.4, -9.3, -9.4, -23.1, -41.4),
        "mid_tom": (-14.3, -0.2, -0.7, 0.0, -3.3, -13.4, -7.4, -13.8, -15.7, -11.4, -11.6, -13.3, -42.6),
        "high_tom": (-18.8, -14.4, 0.0, -9.1, -1.8, -10.8, -10.7, -16.4, -17.9, -18.4, -17.1, -17.6, -33.4),
        "crash": (-70.7, -65.0, -42.1, -21.6, -19.0, -2.6, -5.5, -2.4, -8.6, 0.0, -3.9, -6.4, -19.6),
    },
    8: {
        "kick": (-5.6, 0.0, -2.5, -17.4, -16.4, -22.6, -21.1, -23.1, -18.4, -19.6, -30.2, -35.9, -57.7),
        "snare": (-27.4, -26.5, -13.9, 0.0, -10.4, -8.9, -14.1, -16.8, -16.3, -17.4, -16.5, -20.6, -39.0),
        "hat": (-35.8, -34.8, -22.6, -11.4, -10.2, -14.0, -11.3, -11.4, -9.6, -0.4, 0.0, -0.7, -7.2),
    },
    16: {
        "kick": (-8.4, 0.0, -4.9, -19.2, -20.6, -25.8, -23.4, -24.4, -22.2, -18.1, -13.8, -15.4, -36.4),
        "snare": (-23.9, -18.8, -9.9, 0.0, -10.3, -7.7, -12.4, -10.0, -11.4, -9.7, -8.1, -7.1, -24.1),
        "hat": (-35.8, -34.7, -22.6, -11.3, -10.2, -14.0, -11.3, -11.4, -9.6, -0.4, 0.0, -0.7, -7.3),
    },
    24: {
        "kick": (-15.9, -4.3, 0.0, -6.4, -12.0, -17.2, -17.8, -17.9, -18.6, -16.8, -19.0, -19.3, -29.3),
        "snare": (-22.6, -19.0, 0.0, -6.2, -21.9, -19.9, -21.3, -16.8, -14.8, -14.5, -12.7, -13.2, -22.3),
        "hat": (-35.8, -34.7, -22.6, -11.3, -10.2, -14.0, -11.3, -11.4, -9.6, -0.4, 0.0, -0.7, -7.3),
    },
    25: {
        "kick": (-3.8, 0.0, -4.6, -7.3, -15.1, -19.3, -28.4, -34.8, -38.2, -43.8, -49.9, -56.5, -69.1),
        "snare": (-39.0, -27.2, -9.9, -8.2, -5.1, -15.6, -15.9, -9.5, -3.8, 0.0, -1.3, -4.2, -16.1),
        "hat": (-46.5, -54.4, -53.4, -47.4, -46.4, -47.5, -42.9, -35.8, -28.2, -17.5, -3.8, 0.0, -9.2),
    },
    32: {
        "kick": (-2.8, 0.0, -4.0, -16.7, -20.2, -18.8, -25.7, -30.0, -28.2, -27.2, -31.7, -42.3, -59.0),
        "snare": (-41.4, -29.7, -17.1, 0.0, -9.4, -10.2, -13.2, -15.7, -14.2, -12.8, -10.0, -18.0, -33.9),
        "hat": (-35.8, -34.7, -22.6, -11.3, -10.2, -14.0, -11.3, -11.4, -9.6, -0.4, 0.0, -0.7, -7.3),
    },
    40: {
        "kick": (-2.8, 0.0, -4.0, -16.7, -20.2, -18.8, -25.7, -30.0, -28.2, -27.2, -31.7, -42.3, -59.0),
        "snare": (-23.6, -20.8, -8.7, 0.0, -2.5, -2.4, -14.2, -11.0, -10.9, -5.6, -7.7, -11.3, -23.1),
        "hat": (-35.8, -34.8, -22.6, -11.4, -10.2, -14.0, -11.3, -11.4, -9.6, -0.4, 0.0, -0.7, -7.2),
    },
}

HOME_DB = 6.0
HIGH_BANDS = slice(10, 13)  # 4 kHz and up: the hi-hat's ring


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / RATE)
    m = np.zeros((FFT_SIZE // 2 + 1, len(BAND_EDGES_HZ) - 1), dtype=np.float32)
    for k in range(len(BAND_EDGES_HZ) - 1):
        m[(freqs >= BAND_EDGES_HZ[k]) & (freqs < BAND_EDGES_HZ[k + 1]), k] = 1.0
    return m


BANDS = _band_matrix()
WINDOW = np.hanning(FFT_SIZE + 1)[:FFT_SIZE].astype(np.float32)
NAMES = tuple(TEMPLATE_NOTES)
KIT_PIECES = ("kick", "snare", "hat")


def _kit_matrices(shapes: dict) -> tuple[np.ndarray, np.ndarray]:
    """(templates (13, pieces) each summing to one, home bands (13, pieces)) of one kit."""
    t = np.stack([10.0 ** (np.array(shapes[n]) / 10.0) for n in NAMES], axis=1)
    t /= t.sum(axis=0, keepdims=True)
    home = np.stack([np.array(shapes[n]) >= -HOME_DB for n in NAMES], axis=1).astype(np.float64)
    # a hi-hat is judged on the top bands alone, where snares and kicks hardly reach
    home[:, NAMES.index("hat")] = 0.0
    home[12:, NAMES.index("hat")] = 1.0
    return t, home


KITS = {kit: _kit_matrices({**KIT_TEMPLATES_DB[0], **{n: shapes[n] for n in KIT_PIECES}})
        for kit, shapes in KIT_TEMPLATES_DB.items()}


def band_power(y: np.ndarray) -> np.ndarray:
    """(frames, 13) band power of y (22050 Hz mono) for frames starting every HOP samples
    (frame j spans samples j*HOP .. j*HOP + FFT_SIZE)."""
    if len(y) < FFT_SIZE:
        return np.zeros((0, BANDS.shape[1]), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y.astype(np.float32), FFT_SIZE)[::HOP]
    spec = np.fft.rfft(frames * WINDOW, axis=1)
    with blas_on_this_thread():
        return ((spec.real ** 2 + spec.imag ** 2).astype(np.float32)) @ BANDS


class DrumTranscriber:
    """Streaming drum transcription on 22050 Hz mono audio: ``process(y)`` then ``finish()``
    for the hits as Notes (GM drum pitches, 100 ms long)."""

    def __init__(self):
        self.audio = np.zeros(FFT_SIZE // 2, dtype=np.float32)  # frames centred: frame j at sample j*HOP
        self.audio_start = -(FFT_SIZE // 2)
        self.frames = np.zeros((0, BANDS.shape[1]), dtype=np.float32)
        self.frames_start = 0  # global frame index of frames[0]
        self.done = 0  # frames before this index have been searched for onsets
        self.hits: list[Note] = []
        self.last_onset = -math.inf
        self.loudest_db = -math.inf

    def process(self, y: np.ndarray) -> None:
        """y: (n,) float mono audio at 22050 Hz."""
        self.audio = np.concatenate((self.audio, np.asarray(y, dtype=np.float32)))
        usable = (len(self.audio) - FFT_SIZE) // HOP + 1
        if usable > 0:
            self.frames = np.concatenate((self.frames, band_power(self.audio[:(usable - 1) * HOP + FFT_SIZE])))
            self.audio = self.audio[usable * HOP:]
            self.audio_start += usable * HOP
        while self.frames_start + len(self.frames) - self.done >= CHUNK_FRAMES + CONTEXT_FRAMES:
            self._search(self.done + CHUNK_FRAMES)

    def finish(self) -> list[Note]:
        """Search the rest (the audio is taken as silent after its end); the hits by onset."""
        self.process(np.zeros(FFT_SIZE + CONTEXT_FRAMES * HOP, dtype=np.float32))
        end = self.frames_start + len(self.frames)
        if end > self.done:
            self._search(end - CONTEXT_FRAMES)
        return sorted(self.hits, key=lambda n: (n.onset_s, n.pitch))

    def _search(self, stop: int) -> None:
        """Find and classify onsets in frames done..stop-1."""
        lo = self.frames_start
        db = 10.0 * np.log10(self.frames.astype(np.float64) + 1e-10)
        rise = np.maximum(db[2:] - db[:-2], 0.0).sum(axis=1)
        flux = np.concatenate(([0.0, 0.0], rise))  # flux[j]: rise into frame j
        a, b = self.done - lo, stop - lo
        for j in range(max(a, 3), min(b, len(flux) - 3)):
            v = flux[j]
            if v <= 0 or v < flux[j - 3:j + 4].max():
                continue
            local = flux[max(0, j - 24):j + 25].mean()
            if v < local + ONSET_RISE_DB:
                continue
            t = max(0.0, (lo + j) * HOP / RATE + ONSET_LAG_S)
            if t - self.last_onset < MIN_GAP_S:
                continue
            if self._classify(j, t):
                self.last_onset = t
        self.done = stop
        keep_from = max(0, stop - CONTEXT_FRAMES - lo)
        self.frames = self.frames[keep_from:]
        self.frames_start += keep_from

    def _classify(self, j: int, t: float) -> bool:
        p = self.frames.astype(np.float64)
        n_att, n_pre = int(round(ATTACK_S * RATE / HOP)), int(round(PRE_S * RATE / HOP))
        after = p[j:j + n_att].max(axis=0)
        before = p[max(0, j - n_pre):max(1, j - 1)].mean(axis=0)
        new = np.maximum(after - before, 0.0)
        total = new.sum()
        if total <= 0:
            return False
        level_db = 10.0 * math.log10(total)
        if level_db < self.loudest_db - FLOOR_DB:
            return False
        self.loudest_db = max(self.loudest_db, level_db)
        share = explained_share(new)
        found = False
        for k, name in enumerate(NAMES):
            if share[k] < MIN_SHARE:
                continue
            piece = name
            if name == "hat":
                piece = "open_hat" if self._ring_drop_db(j) < OPEN_HAT_DROP_DB else "closed_hat"
            hit_db = level_db + 10.0 * math.log10(min(share[k], 1.0))
            self.hits.append(Note(t, t + 0.1, GM_NOTE[piece], _velocity(hit_db, self.loudest_db)))
            found = True
        return found

    def _ring_drop_db(self, j: int) -> float:
        """How far (dB) the top bands fall from their peak just after frame j to
        OPEN_HAT_CHECK_MS later (before the next hit, in most playing)."""
        high = 10.0 * np.log10(self.frames[j:j + CONTEXT_FRAMES, HIGH_BANDS].astype(np.float64).sum(axis=1) + 1e-10)
        if high.size == 0:
            return math.inf
        k = int(np.argmax(high[:12]))
        later = k + int(round(OPEN_HAT_CHECK_MS / 1000.0 * RATE / HOP))
        return float(high[k] - high[min(later, high.size - 1)])


def explained_share(new: np.ndarray) -> np.ndarray:
    """(pieces,) for each kit piece, the share of the new energy in its home bands (those
    within HOME_DB of its loudest) that the piece explains, from a non-negative fit of a
    kit's templates to new: (13,) band power weighted by relative error (so quiet bands such
    as a hi-hat's count beside a kick's loud ones). Every kit of ``KIT_TEMPLATES_DB`` is
    fitted and the one that leaves the least residual speaks for the hit: one kit's kick is
    another's tom or snare (the electronic kit's kick peaks where the standard snare does),
    so the pieces are told apart within a kit, not across kits."""
    scale = 1.0 / (new + 1e-3 * new.sum() + 1e-20)
    target = new * scale
    best = None
    for templates, home in KITS.values():
        weights, residual = nnls(templates * scale[:, None], target)
        if best is None or residual < best[0]:
            best = (residual, templates, home, weights)
    _, templates, home, weights = best
    parts = templates * weights[None, :]
    return (parts * home).sum(axis=0) / np.maximum((new[:, None] * home).sum(axis=0), 1e-20)


def _velocity(hit_db: float, loudest_db: float) -> int:
    """Velocity on the GM curve (40 dB from 1 to 127), the loudest hit so far at 120."""
    return int(np.clip(round(120.0 * 10.0 ** ((hit_db - loudest_db) / 40.0)), 1, 127))


def measure_template(y: np.ndarray, onset_s: float) -> np.ndarray:
    """The new-energy band shape (dB re its loudest band) of a single hit at onset_s in y
    (22050 Hz mono): how KIT_TEMPLATES_DB was measured."""
    p = band_power(np.concatenate((np.zeros(FFT_SIZE // 2, dtype=np.float32), y))).astype(np.float64)
    j = int(round(onset_s * RATE / HOP))
    n_att, n_pre = int(round(ATTACK_S * RATE / HOP)), int(round(PRE_S * RATE / HOP))
    new = np.maximum(p[j:j + n_att].max(axis=0) - p[max(0, j - n_pre):max(1, j - 1)].mean(axis=0), 0.0)
    d = 10.0 * np.log10(new + 1e-12)
    return d - d.max()
