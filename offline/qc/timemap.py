"""B's time on A's: the tempo ratio of the two profiles, kept only where it lines up more onsets than B's own time.

The alignment (``align.py``) shifts B by one offset. A candidate at another tempo (a
time-stretch, a rebuild at a misread tempo) then drifts off A note by note, and every
dimension that compares events or frames in time (bass notes, kicks, chords, sections,
the energy curve, the per-frame spectra and embeddings) fell with the tempo: on a 30 s
band 10 % faster, bass notes 4, kicks 23, chords 36, energy 45. The tempo is the BPM
dimension's to judge; the others should hear whether the same things happen in the same
order.

``choose`` takes the ratios of the profiles' tempo readings (each tempo and the candidates
its reader weighed, octave-folded, within 1.5-30 %), refines the best of them and an extra
offset on the events both sides already have (the kicks and the bass notes), and keeps the
map only when its onset agreement beats B's own time by ``MIN_GAIN``: a tempo the reader
got wrong on one side (the same music at the same tempo) lines up fewer onsets and is
refused, and a ratio within ``MIN_SCALE_STEP`` of 1 is not tried, so a candidate at A's
tempo is scored exactly as before.
"""

import math
from dataclasses import dataclass

import numpy as np

MIN_SCALE_STEP = 0.015         # |ln scale| under this: B's own time, no search
MAX_SCALE_STEP = math.log(1.3)  # |ln scale| over this (after octave folding): not a stretch
REFINE_SCALE = 0.02            # the scale is refined within +-2 % of the tempo ratio ...
REFINE_SCALE_STEP = 0.002      # ... in steps of 0.2 % (0.1 % off at most: 30 ms over the first window) ...
MAX_EXTRA_OFFSET_S = 1.0       # the extra offset within +-1 s ...
OFFSET_STEP_S = 0.02           # ... in 20 ms steps (10 ms off at most; the tolerance is 50 ms) ...
FIRST_WINDOW_S = 30.0          # ... on A's first 30 s; then over the whole span:
FINE_SCALE = 0.0015            # the scale within +-0.15 % of the first search's ...
FINE_SCALE_STEP = 0.0001       # ... in steps of 0.01 %,
FINE_OFFSET_S = 0.03           # and the offset within +-30 ms of it ...
FINE_OFFSET_STEP_S = 0.005     # ... in 5 ms steps
TOLERANCE_S = 0.05             # an onset agrees with one on the other side within this
MIN_GAIN = 0.15                # the map is kept when its agreement beats B's own time by this
MIN_ONSETS = 8                 # fewer onsets on either side: no map
PRIOR_S = 40.0                 # a candidate's agreement counts less by |extra offset| / PRIOR_S of itself:
                               # a repetitive part agrees as well one bar later, the smaller offset wins


@dataclass(frozen=True)
class TimeMap:
    """t_a = offset_s + scale * t_b, over A's span [start_s, end_s) (where both sides have audio)."""

    scale: float = 1.0
    offset_s: float = 0.0
    start_s: float = 0.0
    end_s: float = math.inf

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset_s == 0.0

    def to_a(self, t_b):
        return self.offset_s + self.scale * np.asarray(t_b, dtype=np.float64)

    def to_b(self, t_a):
        return (np.asarray(t_a, dtype=np.float64) - self.offset_s) / self.scale

    def inside(self, t_a) -> np.ndarray:
        t = np.asarray(t_a, dtype=np.float64)
        return (t >= self.start_s) & (t < self.end_s)

    def events(self, ref: list, est: list) -> tuple[list, list]:
        """(time_s, value) events of A (ref) and of B (est) on A's time, both kept only in
        the span both sides cover."""
        if self.identity:
            return ref, est
        est_a = [(float(self.to_a(t)), v) for t, v in est]
        return ([e for e in ref if self.inside(e[0])], [e for e in est_a if self.inside(e[0])])

    def frames(self, n_a: int, n_b: int, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Index pairs (ia, ib) of A's and B's frames (hop_s apart, frame k at k hop_s) that
        fall together on A's time."""
        ia = np.arange(n_a)
        if self.identity:
            n = min(n_a, n_b)
            return ia[:n], ia[:n]
        ib = np.rint(self.to_b(ia * hop_s) / hop_s).astype(np.int64)
        ok = (ib >= 0) & (ib < n_b)
        return ia[ok], ib[ok]

    def to_dict(self) -> dict:
        return {"time_scale": round(self.scale, 5), "time_offset_s": round(self.offset_s, 4)}


LABEL_SPAN_S = 1.0e5           # events of different labels (pitches) are kept this far apart


def _keyed(t: np.ndarray, labels: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Sorted keys of the events in [start_s, end_s): time plus label x LABEL_SPAN_S, so that
    only events of one label (a pitch; 0 for kicks) can meet within the tolerance."""
    ok = (t >= start_s) & (t < end_s)
    return np.sort(t[ok] + labels[ok] * LABEL_SPAN_S)


def agreement(ta: np.ndarray, tb_on_a: np.ndarray, start_s: float, end_s: float,
              tolerance_s: float = TOLERANCE_S, labels_a=None, labels_b=None) -> float:
    """The share of events of both sides, in [start_s, end_s), with one of the other side's of
    the same label (default: all one) within tolerance_s (each side counted on its own: a
    fast F-measure without pairing)."""
    la = np.zeros(ta.size) if labels_a is None else np.asarray(labels_a, dtype=np.float64)
    lb = np.zeros(tb_on_a.size) if labels_b is None else np.asarray(labels_b, dtype=np.float64)
    a = _keyed(ta, la, start_s, end_s)
    b = _keyed(tb_on_a, lb, start_s, end_s)
    if a.size == 0 or b.size == 0:
        return 0.0

    def near(x, y):  # how many of x have one of sorted y within the tolerance
        i = np.clip(np.searchsorted(y, x), 1, y.size - 1) if y.size > 1 else np.zeros(x.size, dtype=np.int64)
        d = np.minimum(np.abs(x - y[i]), np.abs(x - y[np.maximum(i - 1, 0)]))
        return int(np.count_nonzero(d <= tolerance_s))

    return (near(a, b) + near(b, a)) / (a.size + b.size)


def _folded_ratio(tempo_a, tempo_b) -> float | None:
    if not tempo_a or not tempo_b or not (math.isfinite(tempo_a) and math.isfinite(tempo_b)):
        return None
    r = math.log(tempo_b / tempo_a)
    r -= math.log(2.0) * round(r / math.log(2.0))  # the octave readings of one tempo fold together
    return r


def _least_squares(ta, la, tb, lb, scale, off, s, duration_a_s, duration_b_s):
    """The search's (scale, offset) refitted by least squares on the event pairs it lines up
    (each of B's events with the nearest of A's of its label within the tolerance): the
    search only bounds the map within the tolerance. Kept when it agrees as well."""
    ka = np.sort(ta + la * LABEL_SPAN_S)
    kb = off + scale * tb + lb * LABEL_SPAN_S
    if ka.size < 2:
        return scale, off, s
    i = np.clip(np.searchsorted(ka, kb), 1, ka.size - 1)
    j = np.where(np.abs(kb - ka[i]) < np.abs(kb - ka[i - 1]), i, i - 1)
    ok = np.abs(kb - ka[j]) <= TOLERANCE_S
    if np.count_nonzero(ok) < MIN_ONSETS:
        return scale, off, s
    x, y = tb[ok], (ka[j] - lb * LABEL_SPAN_S)[ok]
    scale2, off2 = np.polyfit(x, y, 1)
    start, end = max(0.0, off2), min(duration_a_s, off2 + scale2 * duration_b_s)
    s2 = agreement(ta, off2 + scale2 * tb, start, end, labels_a=la, labels_b=lb)
    return (float(scale2), float(off2), s2) if s2 >= s else (scale, off, s)


def _readings(tempo) -> list:
    """A tempo or a list of readings (the profile's tempo and its candidates) as a list of
    finite positive BPM."""
    values = tempo if isinstance(tempo, (list, tuple)) else [tempo]
    return [float(v) for v in values if v and math.isfinite(v) and v > 0]


def _ratios(tempi_a, tempi_b) -> list:
    """The folded log ratios of every pair of readings within the stretch range, one per
    REFINE_SCALE (the search around each covers that much), the first reading's pair first."""
    out = []
    for x in _readings(tempi_a):
        for y in _readings(tempi_b):
            r = _folded_ratio(x, y)
            if r is not None and MIN_SCALE_STEP <= abs(r) <= MAX_SCALE_STEP and all(abs(r - q) > REFINE_SCALE for q in out):
                out.append(r)
    return out


def choose(events_a, events_b, tempo_a, tempo_b, duration_a_s: float, duration_b_s: float) -> tuple[TimeMap, dict]:
    """The map from B's time to A's (see the module docstring) and what was tried. events_*:
    (onset_s, label) of each side (its kicks, label 0, and its bass line, label the MIDI
    pitch); tempo_*: each profile's BPM, or a list of its readings (its tempo first, then
    the candidates its tempo reader weighed: a 3:2 misreading on one side still leaves the
    true ratio among the pairs); duration_*: each side's length (s)."""
    ea = np.asarray(events_a, dtype=np.float64).reshape(-1, 2)
    eb = np.asarray(events_b, dtype=np.float64).reshape(-1, 2)
    ta, la, tb, lb = ea[:, 0], ea[:, 1], eb[:, 0], eb[:, 1]
    base = agreement(ta, tb, 0.0, min(duration_a_s, duration_b_s), labels_a=la, labels_b=lb)
    info = {"own_time_agreement": round(base, 4), "a_bpm": (_readings(tempo_a) or [None])[0],
            "b_bpm": (_readings(tempo_b) or [None])[0]}
    ratios = _ratios(tempo_a, tempo_b)
    # no map can beat an agreement over 1 - MIN_GAIN by MIN_GAIN: B is at A's tempo
    if not ratios or min(ta.size, tb.size) < MIN_ONSETS or base > 1.0 - MIN_GAIN:
        return TimeMap(), info

    def search(scales, offsets, window_s):
        """The best (weighted agreement, scale, offset, agreement) over A's first window_s."""
        best = (-1.0, 1.0, 0.0, 0.0)
        for scale in scales:
            for off in offsets:
                start, end = max(0.0, off), min(duration_a_s, window_s, off + scale * duration_b_s)
                if end - start < 0.5 * min(duration_a_s, duration_b_s, window_s):
                    continue
                s = agreement(ta, off + scale * tb, start, end, labels_a=la, labels_b=lb)
                weighted = s * (1.0 - abs(off) / PRIOR_S)
                if weighted > best[0]:
                    best = (weighted, float(scale), float(off), s)
        return best

    # first on A's first FIRST_WINDOW_S, where a scale 0.1 % off drifts by under the tolerance;
    # then over the whole span, the scale finer (0.01 % is 18 ms over 3 minutes)
    steps = np.exp(np.arange(-REFINE_SCALE, REFINE_SCALE + 1e-9, REFINE_SCALE_STEP))
    offsets = np.arange(-MAX_EXTRA_OFFSET_S, MAX_EXTRA_OFFSET_S + 1e-9, OFFSET_STEP_S)
    _, scale, off, _ = max(search(math.exp(r) * steps, offsets, FIRST_WINDOW_S) for r in ratios)
    best = search(scale * np.exp(np.arange(-FINE_SCALE, FINE_SCALE + 1e-9, FINE_SCALE_STEP)),
                  off + np.arange(-FINE_OFFSET_S, FINE_OFFSET_S + 1e-9, FINE_OFFSET_STEP_S), math.inf)
    _, scale, off, s = best
    scale, off, s = _least_squares(ta, la, tb, lb, scale, off, s, duration_a_s, duration_b_s)
    info.update({"tempo_ratios": [round(math.exp(r), 5) for r in ratios], "mapped_agreement": round(s, 4)})
    if s < base + MIN_GAIN:
        return TimeMap(), info
    return TimeMap(scale, off, max(0.0, off), min(duration_a_s, off + scale * duration_b_s)), info
