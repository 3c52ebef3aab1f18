"""Tempo, tempo curve, beats, downbeats and time signature from the onset envelope.

1. Tempo salience: the autocorrelation of the onset envelope (local mean removed), read on
   a log-spaced grid of 40..240 BPM as a comb (the lag and its multiples up to 4, weighted
   1/k), so a tempo whose bars and half bars also repeat outscores a lucky single lag.
2. Octave errors, explicitly: the candidates are the best tempo and its relatives x1/2, x2,
   x2/3, x3/2. Each scores its comb salience times a log-normal prior on the beat rate
   (centre ``PRIOR_BPM``, ``PRIOR_OCTAVES`` wide) times how well a beat grid at that tempo
   lifts its beats above the mean onset strength; the best wins and the others are kept
   (``tempo_candidates``) with their scores. The confidence is the winner's share.
   A grid twice too slow is told by its half-beat points: where the low band (kick and
   bass) strikes there about as hard as on the grid's beats, the bass moves at twice the
   grid's rate, and the candidate's score is lowered by ``FILL_WEIGHT`` times that ratio,
   or times the same ratio in the whole mix where that is the lesser (a bass in even
   eighths under off-beat hats fills a 120 BPM grid's half-beats in the low band; in the
   mix the hats make its beats the stronger).
3. The tempo curve: the same salience in 8 s windows every 1 s, a Viterbi path over the
   grid within ``CURVE_RANGE`` (x0.78..x1.3) of the global tempo with a cost on log-tempo
   jumps (short of 3:4 and 4:3, where a beat tracker drifts to another reading of the pulse).
4. Beats: dynamic programming (Ellis 2007) on the onset envelope with the local period of
   the curve: each beat's score is its onset strength plus the best predecessor's score
   less a penalty on the log ratio of the interval to the local period.
5. Meter: per beat, the low-band onset, the chroma change across the beat and the onset
   strength (z-scored, summed) are folded over 2, 3 and 4 beats per bar at every phase;
   the fold with the largest on-bar minus off-bar contrast gives the beats per bar and the
   downbeat phase. The subdivision (autocorrelation at a third against a half of the beat
   period) tells simple metres (2/4, 3/4, 4/4) from compound ones (6/8, 9/8, 12/8).
"""

import math
from dataclasses import dataclass, field

from ...kernels.jit import njit
import numpy as np
from scipy.ndimage import maximum_filter1d

from .features import CHROMA_STEP, Features, extract

MIN_BPM = 40.0
MAX_BPM = 240.0
GRID_PER_OCTAVE = 96
PRIOR_BPM = 110.0
PRIOR_OCTAVES = 0.85
CURVE_WINDOW_S = 8.0
CURVE_HOP_S = 1.0
CURVE_JUMP_COST = 40.0
CURVE_RANGE = (0.78, 1.3)  # the tempo curve's span around the global tempo: short of 3:4 and 4:3
TIGHTNESS = 100.0
METER_WEIGHTS = (1.0, 1.0, 0.5)  # low-band onset, chroma change, onset strength
METER_BIAS = {4: 1.0, 3: 1.0, 2: 1.0}
ALTERNATION_WEIGHT = 0.5
FILL_WEIGHT = 0.4
OCTAVE_RATIOS = (1.0, 0.5, 2.0, 2.0 / 3.0, 1.5, 1.0 / 3.0, 3.0)
# a 3:2 relative of the salience's best must win clearly: the half-beat fill that tells a
# grid twice too slow reads nothing at a 2/3 grid's half-beat points (they fall between the
# eighths), so without this a band of even eighths under a beat read 80 for 120
THREE_TWO_WEIGHT = {2.0 / 3.0: 0.8, 1.5: 0.8}


@dataclass(frozen=True)
class TempoBeats:
    """Tempo and metre of a signal; times in seconds from the first sample."""

    tempo_bpm: float | None
    tempo_confidence: float
    tempo_curve: tuple = ()          # ((time_s, tempo_bpm), ...) every CURVE_HOP_S
    beats_s: tuple = ()
    downbeats_s: tuple = ()
    time_signature: str | None = None  # "4/4", "3/4", "2/4", "6/8", "9/8", "12/8"
    beats_per_bar: int | None = None
    subdivision: int | None = None     # 2 simple, 3 compound
    tempo_candidates: tuple = field(default=())  # ((tempo_bpm, score), ...) the octave family

    def to_dict(self) -> dict:
        return {
            "tempo_bpm": _r(self.tempo_bpm, 3),
            "tempo_confidence": _r(self.tempo_confidence, 3),
            "tempo_curve": [{"time_s": _r(t, 3), "tempo_bpm": _r(b, 3)} for t, b in self.tempo_curve],
            "beats_s": [_r(t, 4) for t in self.beats_s],
            "downbeats_s": [_r(t, 4) for t in self.downbeats_s],
            "time_signature": self.time_signature,
            "beats_per_bar": self.beats_per_bar,
            "subdivision": self.subdivision,
            "tempo_candidates": [{"tempo_bpm": _r(b, 3), "score": _r(s, 4)} for b, s in self.tempo_candidates],
        }


def _r(v, digits):
    if v is None:
        return None
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def bpm_grid() -> np.ndarray:
    """The tempo grid in BPM: log-spaced, GRID_PER_OCTAVE per octave, MIN_BPM..MAX_BPM."""
    n = int(round(math.log2(MAX_BPM / MIN_BPM) * GRID_PER_OCTAVE)) + 1
    return MIN_BPM * 2.0 ** (np.arange(n) / GRID_PER_OCTAVE)


def _detrend(o: np.ndarray, fps: float) -> np.ndarray:
    w = max(1, min(max(3, int(round(fps))), o.shape[0]))  # a clip shorter than a second: a shorter window
    kernel = np.ones(w) / w
    local = np.convolve(o, kernel, mode="same")
    d = np.maximum(o - local, 0.0)
    s = d.std()
    return d / s if s > 0 else d


def _autocorr(o: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of o (last axis) for lags 0..max_lag, unbiased (divided by overlap)."""
    n = o.shape[-1]
    size = 1 << int(math.ceil(math.log2(2 * n + 1)))
    spec = np.fft.rfft(o, size, axis=-1)
    ac = np.fft.irfft(spec * np.conj(spec), size, axis=-1)[..., :max_lag + 1]
    overlap = np.maximum(n - np.arange(max_lag + 1), 1)
    return ac / overlap


def _interp_lag(ac: np.ndarray, lags: np.ndarray) -> np.ndarray:
    i = np.floor(lags).astype(int)
    f = lags - i
    i = np.clip(i, 0, ac.shape[-1] - 2)
    return ac[..., i] * (1 - f) + ac[..., i + 1] * f


def comb_salience(ac: np.ndarray, fps: float, grid_bpm: np.ndarray) -> np.ndarray:
    """Comb salience per grid tempo: sum over k=1..4 of ac(k * lag) / k, ac normalised by
    ac(0). ac: (..., lags); returns (..., grid)."""
    lag = 60.0 * fps / grid_bpm
    out = np.zeros(ac.shape[:-1] + (grid_bpm.size,))
    norm = np.maximum(ac[..., :1], 1e-12)
    for k in range(1, 5):
        ok = k * lag < ac.shape[-1] - 1
        val = np.where(ok, _interp_lag(ac, np.minimum(k * lag, ac.shape[-1] - 1.001)), 0.0)
        out += val / k
    return out / norm


def _prior(bpm):
    return np.exp(-0.5 * (np.log2(np.asarray(bpm) / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)


def _grid_contrast(o: np.ndarray, fps: float, bpm: float) -> tuple[float, float]:
    """(contrast, alternation) of a beat grid at bpm on o, at the phase of the strongest beats.
    contrast: mean on-beat strength over itself plus the mean strength of every frame, 0.5
    (the grid finds nothing special) .. 1 (all onsets on the grid); alternation: |even - odd|
    / (even + odd) of the on-beat strength, 0 when every beat is alike .. 1 when every other
    beat is empty (a grid twice too fast). The mean of every frame, not the half-beat
    points, is the reference: a grid at 2/3 or 3/2 of the tempo puts its half-beat points
    where nothing plays and would look sharp against them."""
    period = 60.0 * fps / bpm
    # the strongest value within +-2 frames, so a grid a fraction of a frame off still lands
    o = maximum_filter1d(o, 5)
    n = o.size
    overall = float(o.mean())
    best, best_on = (0.0, 0.0), -np.inf
    for phase in np.arange(0.0, period, 1.0):
        on = np.arange(phase, n - 1, period)
        if not on.size:
            continue
        v = _interp_lag(o, on)
        a = float(v.mean())
        if a > best_on and a + overall > 0:
            even, odd = v[0::2].mean(), v[1::2].mean() if v.size > 1 else 0.0
            best_on = a
            best = (a / (a + overall), abs(even - odd) / max(even + odd, 1e-12))
    return best


def _half_beat_fill(o: np.ndarray, fps: float, bpm: float) -> float:
    """0..1: mean strength of o half way between the beats of a grid at bpm over the mean on
    its beats, at the phase of the strongest beats. Near 1 when o strikes as often between
    the beats as on them (the grid is twice too slow for it), near 0 when it keeps to them."""
    period = 60.0 * fps / bpm
    o = maximum_filter1d(o, 5)
    best, best_on = 0.0, -np.inf
    for phase in np.arange(0.0, period, 1.0):
        on = np.arange(phase, o.size - 1 - 0.5 * period, period)
        if not on.size:
            continue
        a = float(_interp_lag(o, on).mean())
        if a > best_on:
            best_on = a
            best = float(np.clip(_interp_lag(o, on + 0.5 * period).mean() / max(a, 1e-12), 0.0, 1.0))
    return best


def global_tempo(o: np.ndarray, fps: float, o_low: np.ndarray | None = None,
                 o_bass: np.ndarray | None = None) -> tuple[float, float, tuple]:
    """(tempo_bpm, confidence 0..1, candidates ((bpm, score), ...)) of a detrended onset
    envelope o at fps frames per second; o_low: the envelope that decides between the
    members of an octave family (o when None); o_bass: the low band alone (kick and bass),
    whose strikes between a grid's beats mark a grid twice too slow (not used when None)."""
    o_low = o if o_low is None else o_low
    grid = bpm_grid()
    max_lag = int(math.ceil(4 * 60.0 * fps / MIN_BPM)) + 2
    ac = _autocorr(o, min(max_lag, max(o.size - 1, 2)))
    if ac.shape[-1] < 4 or ac[0] <= 0:
        return None, 0.0, ()
    sal = comb_salience(ac, fps, grid)
    raw_best = float(grid[int(np.argmax(sal * _prior(grid)))])
    cands = []
    for ratio in OCTAVE_RATIOS:
        bpm = raw_best * ratio
        if not MIN_BPM <= bpm <= MAX_BPM:
            continue
        # refine to the local salience peak within +-3 %
        near = np.flatnonzero(np.abs(np.log2(grid / bpm)) < 0.043)
        j = near[np.argmax(sal[near])]
        b = float(grid[j])
        contrast, alternation = _grid_contrast(o_low, fps, b)
        # twice too slow only if its half-beats are filled in the low band and in the whole mix
        # alike: an even bass line in eighths under off-beat hats fills the first, not the second
        fill = 0.0 if o_bass is None else min(_half_beat_fill(o_bass, fps, b), _half_beat_fill(o, fps, b))
        s = (max(float(sal[j]), 0.0) * float(_prior(b)) * contrast ** 2 * (1.0 - ALTERNATION_WEIGHT * alternation)
             * (1.0 - FILL_WEIGHT * fill) * THREE_TWO_WEIGHT.get(ratio, 1.0))
        cands.append((b, s))
    cands.sort(key=lambda c: -c[1])
    total = sum(s for _, s in cands)
    conf = cands[0][1] / total if total > 0 else 0.0
    return cands[0][0], conf, tuple(cands)


def tempo_curve(o: np.ndarray, fps: float, tempo_bpm: float) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, tempo_bpm) every CURVE_HOP_S: the Viterbi path of windowed comb salience
    within CURVE_RANGE of tempo_bpm."""
    grid = bpm_grid()
    grid = grid[(grid >= tempo_bpm * CURVE_RANGE[0]) & (grid <= tempo_bpm * CURVE_RANGE[1])]
    win = int(round(CURVE_WINDOW_S * fps))
    hop = int(round(CURVE_HOP_S * fps))
    n = o.size
    if n <= win:
        return np.array([n / fps / 2.0]), np.array([tempo_bpm])
    starts = np.arange(0, n - win + 1, hop)
    if starts[-1] + win < n:
        starts = np.append(starts, n - win)
    frames = np.stack([o[s:s + win] for s in starts])
    max_lag = min(int(math.ceil(4 * 60.0 * fps / grid[0])) + 2, win - 1)
    ac = _autocorr(frames, max_lag)
    sal = comb_salience(ac, fps, grid)
    sal = sal / np.maximum(sal.max(axis=1, keepdims=True), 1e-9)
    # Viterbi: maximise sum of salience - jump cost * (log2 ratio)**2
    lg = np.log2(grid)
    trans = -CURVE_JUMP_COST * (lg[:, None] - lg[None, :]) ** 2
    score = sal[0].copy()
    back = np.zeros(sal.shape, dtype=np.int64)
    for t in range(1, sal.shape[0]):
        cand = score[:, None] + trans
        back[t] = np.argmax(cand, axis=0)
        score = cand[back[t], np.arange(grid.size)] + sal[t]
    path = np.zeros(sal.shape[0], dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(sal.shape[0] - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    times = (starts + win / 2.0) / fps
    return times, grid[path]


@njit(cache=True)
def _dp_beats(o, period, tightness):
    n = o.size
    score = np.zeros(n)
    back = -np.ones(n, dtype=np.int64)
    for t in range(n):
        p = period[t]
        lo = int(t - 2.0 * p)
        hi = int(t - 0.5 * p)
        best = -1e30
        arg = -1
        for u in range(max(lo, 0), max(hi, 0) + 1):
            if u >= t:
                break
            r = math.log((t - u) / p)
            v = score[u] - tightness * r * r
            if v > best:
                best = v
                arg = u
        if arg >= 0 and best > 0.0:
            score[t] = o[t] + best
            back[t] = arg
        else:
            score[t] = o[t]
    return score, back


def track_beats(o: np.ndarray, fps: float, curve_times_s: np.ndarray, curve_bpm: np.ndarray) -> np.ndarray:
    """Beat frames (int) by dynamic programming on o with the local period of the curve."""
    n = o.size
    t = np.arange(n) / fps
    bpm = np.interp(t, curve_times_s, curve_bpm)
    period = 60.0 * fps / bpm
    score, back = _dp_beats(o.astype(np.float64), period, TIGHTNESS)
    # the last beat: the best score within the last period
    tail = int(math.ceil(period[-1]))
    last = n - tail + int(np.argmax(score[n - tail:])) if n > tail else int(np.argmax(score))
    beats = [last]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    beats = np.array(beats[::-1])
    # trim beats in leading and trailing silence (no onset strength near them)
    smooth = np.convolve(o, np.ones(int(fps)) / int(fps), mode="same")
    thresh = 0.1 * np.median(smooth[beats]) if beats.size else 0.0
    ok = np.flatnonzero(smooth[beats] > thresh)
    if ok.size:
        beats = beats[ok[0]:ok[-1] + 1]
    return beats


def meter(feat: Features, beat_frames: np.ndarray, period_frames: float, ac_o: np.ndarray) -> tuple[int, int, int]:
    """(beats_per_bar, downbeat phase 0..bpb-1, subdivision 2 or 3) from per-beat features."""
    nb = beat_frames.size
    # subdivision: ac at a third (and two thirds) of the beat period against a half
    third = 0.5 * (_interp_lag(ac_o, np.array([period_frames / 3.0]))[0]
                   + _interp_lag(ac_o, np.array([2.0 * period_frames / 3.0]))[0])
    half = _interp_lag(ac_o, np.array([period_frames / 2.0]))[0]
    subdivision = 3 if third > half else 2
    if nb < 8:
        return 4 if subdivision == 2 else 2, 0, subdivision
    low = np.array([feat.onset_low[max(b - 2, 0):b + 3].max() for b in beat_frames])
    ons = np.array([feat.onset[max(b - 2, 0):b + 3].max() for b in beat_frames])
    chroma = feat.chroma
    cidx = np.clip(beat_frames // CHROMA_STEP, 0, max(chroma.shape[1] - 1, 0))
    change = np.zeros(nb)
    if chroma.shape[1] > 2:
        seg = [chroma[:, cidx[i]:max(cidx[i + 1], cidx[i] + 1)].mean(axis=1) for i in range(nb - 1)]
        seg.append(chroma[:, cidx[-1]:].mean(axis=1) if cidx[-1] < chroma.shape[1] else seg[-1])
        seg = np.array(seg)
        seg = seg / np.maximum(np.linalg.norm(seg, axis=1, keepdims=True), 1e-12)
        change[1:] = 1.0 - (seg[1:] * seg[:-1]).sum(axis=1)
    z = lambda v: (v - v.mean()) / v.std() if v.std() > 0 else np.zeros_like(v)
    f = METER_WEIGHTS[0] * z(low) + METER_WEIGHTS[1] * z(change) + METER_WEIGHTS[2] * z(ons)
    best = (-np.inf, 4, 0)
    for m in (4, 3, 2):
        for phase in range(m):
            on = (np.arange(nb) - phase) % m == 0
            s = (f[on].mean() - f[~on].mean()) * METER_BIAS[m]
            if s > best[0] + 1e-9:
                best = (s, m, phase)
    return best[1], best[2], subdivision


def signature(beats_per_bar: int, subdivision: int) -> str:
    """The time signature text: simple x/4, compound (3 x beats_per_bar)/8."""
    if subdivision == 3:
        return f"{3 * beats_per_bar}/8"
    return f"{beats_per_bar}/4"


def from_features(feat: Features) -> TempoBeats:
    """Tempo and metre from extracted features (see ``features.FeatureStream``)."""
    fps = feat.sample_rate / feat.hop
    o = _detrend(feat.onset, fps)
    if o.size < int(4 * fps) or not np.any(o > 0):
        return TempoBeats(tempo_bpm=None, tempo_confidence=0.0)
    o_bass = _detrend(feat.onset_low, fps)
    tempo, conf, cands = global_tempo(o, fps, 0.5 * (o + o_bass), o_bass)
    if tempo is None:
        return TempoBeats(tempo_bpm=None, tempo_confidence=0.0)
    ct, cb = tempo_curve(o, fps, tempo)
    beats = track_beats(o, fps, ct, cb)
    beat_s = beats / fps
    # the reported curve and tempo follow the beats found: median interval in 4 s windows
    curve = _curve_from_beats(beat_s, feat.duration_s) if beats.size > 3 else tuple(zip(ct, cb))
    local = np.array([b for _, b in curve]) if curve else np.array([tempo])
    tempo_out = float(np.median(local))
    ac_o = _autocorr(o, int(4 * 60.0 * fps / MIN_BPM))
    period = 60.0 * fps / tempo_out
    bpb, phase, sub = meter(feat, beats, period, ac_o)
    downbeats = beat_s[phase::bpb]
    return TempoBeats(tempo_bpm=tempo_out, tempo_confidence=float(conf), tempo_curve=curve,
                      beats_s=tuple(float(t) for t in beat_s), downbeats_s=tuple(float(t) for t in downbeats),
                      time_signature=signature(bpb, sub), beats_per_bar=bpb, subdivision=sub,
                      tempo_candidates=cands)


def _curve_from_beats(beat_s: np.ndarray, duration_s: float) -> tuple:
    ibi = np.diff(beat_s)
    mid = 0.5 * (beat_s[1:] + beat_s[:-1])
    out = []
    for t in np.arange(0.0, duration_s + 1e-9, CURVE_HOP_S):
        sel = np.abs(mid - t) <= 2.0
        if not sel.any():
            sel = np.zeros(mid.size, bool)
            sel[np.argmin(np.abs(mid - t))] = True
        out.append((float(t), float(60.0 / np.median(ibi[sel]))))
    return tuple(out)


def tempo_and_beats(x: np.ndarray, sample_rate: int) -> TempoBeats:
    """Tempo (BPM, confidence, curve), beats, downbeats and time signature of
    x: (frames, channels) or (frames,) float at sample_rate Hz. Streams x in blocks."""
    return from_features(extract(x, sample_rate, loudness=False))
