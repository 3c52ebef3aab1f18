"""Per element (one stem): ADSR envelope, blind RT60, delay time, sidechain pumping, filter-cutoff movement.

All read the stem's amplitude envelope: RMS over 5 ms frames (``ENV_S``), channels pooled.
- Notes: onsets where the envelope rises ``ONSET_RISE_DB`` within 20 ms from a level above
  the stem's peak - 50 dB, at least 50 ms apart.
- ADSR (medians over notes): attack = the 10 %..90 % rise time / 0.8 (the whole ramp of a
  linear attack); sustain = the median level of the longest plateau after the peak (a run
  of the level smoothed over ``PLATEAU_SMOOTH_S`` changing by < 0.25 dB per frame), in dB
  below the smoothed peak (null for percussive notes with
  no plateau); decay = the time from the peak to 90 % of the fall to the sustain level,
  / 0.9; release = the time from the end of the plateau to 10 % of the sustain level, / 0.9.
- RT60: free decays are runs where the envelope (smoothed over 25 ms) falls for >= 150 ms
  and by >= 20 dB, never rising 3 dB above its lowest level so far; on each, a line is fitted to the dB envelope from 5 dB under the run's start
  down to 10 dB above the noise floor (the stem's 5th percentile level); RT60 = 60 dB over
  the slope. The median over decays whose fit explains >= 95 % of the variance.
- Delay: for lags of 60 ms..1.5 s, the share of strong notes followed at that lag (+-10 ms)
  by an onset that is quieter by a consistent amount (an echo repeats a note, weaker, by
  the same ratio each time, which played notes do not); the best lag with a share >= 0.5.
- Sidechain: the dB envelope folded on the beat grid (32 phase bins per beat, median over
  beats); the depth is the folded curve's range in dB; the rate (pumps per second) is the
  beat rate, twice it when half beats fold as well, half of it when only pairs of beats
  repeat (explained variance 0.15 higher).
- Filter cutoff: per 100 ms frame, the spectral peak envelope in 1/6-octave bands (the
  loudest spectral peak in each band; bands with no peak, as between the harmonics of a
  low note, are left out) is fitted with two straight lines in dB over log frequency
  meeting at the cutoff (a grid search over band centres; peaks down to
  ``CUTOFF_FIT_RANGE_DB`` under the loudest, so clicks and noise under a steep slope do not
  flatten it);
  a frame has a cutoff when the slope above it is >= ``CUTOFF_MIN_DROP_DB_OCT`` steeper.
"""

import math
from dataclasses import dataclass

import numpy as np

from .tempo import TempoBeats

ENV_S = 0.005
ONSET_RISE_DB = 9.0
MIN_NOTE_GAP_S = 0.05
PLATEAU_DB_PER_FRAME = 0.25
PLATEAU_SMOOTH_S = 0.015
DECAY_MIN_S = 0.15
DECAY_MIN_DB = 20.0
DECAY_RISE_DB = 3.0
CUTOFF_MIN_DROP_DB_OCT = 9.0
CUTOFF_FIT_RANGE_DB = 60.0  # the fit takes peaks down to this far under the loudest
PHASE_BINS = 32
SIDECHAIN_RANGE_DB = 40.0


@dataclass(frozen=True)
class ElementProfile:
    """What one stem shows; None where nothing was found."""

    adsr: dict                       # attack_s, decay_s, sustain_db, release_s, notes
    rt60_s: float | None
    delay_s: float | None
    sidechain_depth_db: float | None
    sidechain_rate_hz: float | None
    filter_cutoff: tuple = ()        # ((time_s, cutoff_hz), ...) frames with a cutoff
    filter_movement_octaves: float | None = None

    def to_dict(self) -> dict:
        r = lambda v, d=4: None if v is None or not math.isfinite(v) else round(float(v), d)
        return {"adsr": {k: (r(v) if k != "notes" else v) for k, v in self.adsr.items()},
                "rt60_s": r(self.rt60_s), "delay_s": r(self.delay_s),
                "sidechain_depth_db": r(self.sidechain_depth_db, 2), "sidechain_rate_hz": r(self.sidechain_rate_hz),
                "filter_cutoff": [{"time_s": r(t, 3), "cutoff_hz": r(f, 1)} for t, f in self.filter_cutoff],
                "filter_movement_octaves": r(self.filter_movement_octaves, 3)}


def envelope(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """(RMS per ENV_S frame (linear), frame length s) of x: (frames, channels)."""
    n = max(1, int(round(ENV_S * sample_rate)))
    m = (x.shape[0] // n) * n
    e = np.sqrt((x[:m] ** 2).mean(axis=1).reshape(-1, n).mean(axis=1))
    return e, n / sample_rate


def _db(e):
    return 20.0 * np.log10(np.maximum(e, 1e-10))


def onsets(env_db: np.ndarray, frame_s: float) -> np.ndarray:
    """Note onset frames of a dB envelope (the frame where the rise starts)."""
    floor = env_db.max() - 50.0
    k = max(1, int(round(0.02 / frame_s)))
    prev_min = np.array([env_db[max(0, i - k):i].min() if i else env_db[0] for i in range(env_db.size)])
    rise = env_db - prev_min
    cand = np.flatnonzero((rise >= ONSET_RISE_DB) & (env_db > floor))
    gap = int(round(MIN_NOTE_GAP_S / frame_s))
    out = []
    for c in cand:
        if not out or c - out[-1] > gap:
            # back up to where the rise began
            s = c
            while s > 0 and env_db[s - 1] < env_db[s] - 0.5 and c - s < k:
                s -= 1
            out.append(c if not out else max(s, out[-1] + 1))
    return np.array(out, dtype=np.int64)


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    """Centred moving mean over k frames (edges: over the frames there are)."""
    if k <= 1 or v.size < 2:
        return v
    c = np.convolve(v, np.ones(k), mode="same")
    n = np.convolve(np.ones(v.size), np.ones(k), mode="same")
    return c / n


def _plateau(seg_db: np.ndarray) -> tuple[int, int]:
    """(start, end) frames of the longest run changing < PLATEAU_DB_PER_FRAME per frame."""
    flat = np.abs(np.diff(seg_db)) < PLATEAU_DB_PER_FRAME
    best, cur, start, best_start = 0, 0, 0, 0
    for i, f in enumerate(flat):
        if f:
            if cur == 0:
                start = i
            cur += 1
            if cur > best:
                best, best_start = cur, start
        else:
            cur = 0
    return best_start, best_start + best


def adsr(env: np.ndarray, frame_s: float, note_frames: np.ndarray) -> dict:
    """Median ADSR over notes: attack_s, decay_s, sustain_db (re peak), release_s, notes."""
    att, dec, sus, rel = [], [], [], []
    ends = np.append(note_frames[1:], env.size)
    for a, b in zip(note_frames, ends):
        seg = env[a:b]
        if seg.size < 6 or seg.max() <= 0:
            continue
        look = max(3, min(seg.size, int(round(0.5 / frame_s))))
        p = int(np.argmax(seg[:look]))
        pk = seg[p]
        pre = seg[:p + 1]
        i10 = np.flatnonzero(pre >= 0.1 * pk)
        i90 = np.flatnonzero(pre >= 0.9 * pk)
        t10 = _cross(pre, 0.1 * pk, i10[0]) if i10.size else 0.0
        t90 = _cross(pre, 0.9 * pk, i90[0]) if i90.size else float(p)
        att.append(max(t90 - t10, 0.0) * frame_s / 0.8)
        post_db = _db(seg[p:] / pk)
        # the plateau on the level smoothed over PLATEAU_SMOOTH_S: a steady tone's RMS over
        # short frames ripples by a dB or so (frames that are no whole number of periods)
        k = max(1, int(round(PLATEAU_SMOOTH_S / frame_s)))
        smooth_db = _smooth(_db(seg), k)
        s0, s1 = _plateau(smooth_db[p:])
        if s1 - s0 >= max(4, int(0.05 / frame_s)) and post_db[s0:s1 + 1].mean() > -40.0:
            s_lin = float(np.median(seg[p + s0:p + s1 + 1]))
            sus.append(float(np.median(smooth_db[p + s0:p + s1 + 1]) - smooth_db[max(0, p - k):p + k + 1].max()))
            target = s_lin + 0.1 * (pk - s_lin)
            below = np.flatnonzero(seg[p:p + s0 + 1] <= target)
            dec.append((below[0] if below.size else s0) * frame_s / 0.9)
            tail = seg[p + s1:]
            under = np.flatnonzero(tail <= 0.1 * s_lin)
            if under.size:
                rel.append(under[0] * frame_s / 0.9)
        else:
            under = np.flatnonzero(post_db <= -20.0)
            if under.size:
                dec.append(under[0] * frame_s)
    med = lambda v: float(np.median(v)) if v else None
    return {"attack_s": med(att), "decay_s": med(dec), "sustain_db": med(sus), "release_s": med(rel),
            "notes": int(len(att))}


def _cross(v, level, i):
    if i == 0:
        return 0.0
    a, b = v[i - 1], v[i]
    return (i - 1) + (level - a) / (b - a) if b != a else float(i)


def rt60(x: np.ndarray, sample_rate: int) -> float | None:
    """Blind RT60 (s) from the free decays of x: (frames, channels) or (frames,); None when
    no free decay of >= 20 dB is found."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    env, frame_s = envelope(x, sample_rate)
    return _rt60_env(_db(env), frame_s)


def _rt60_env(env_db: np.ndarray, frame_s: float) -> float | None:
    if env_db.size < 10:
        return None
    # smooth (25 ms) so noise-like tails fall steadily at this resolution
    k = max(1, int(round(0.025 / frame_s)))
    sm = np.convolve(env_db, np.ones(k) / k, mode="same")
    floor = max(np.percentile(sm, 5), sm.max() - 100.0)
    est = []
    i, n = 0, sm.size
    min_len = int(round(DECAY_MIN_S / frame_s))
    while i < n - 1:
        if sm[i + 1] >= sm[i]:
            i += 1
            continue
        # a decay run: it goes on while the level stays under its running minimum + DECAY_RISE_DB
        j, low = i + 1, sm[i + 1]
        while j + 1 < n and sm[j + 1] < low + DECAY_RISE_DB:
            j += 1
            low = min(low, sm[j])
        run = sm[i:j + 1]
        if j - i >= min_len and run[0] - low >= DECAY_MIN_DB:
            top, bottom = run[0] - 5.0, max(low, floor + 10.0)
            # the fit stops where the run first reaches the bottom (the tail may sit on a floor)
            last = int(np.argmax(run <= bottom)) if np.any(run <= bottom) else run.size
            sel = np.flatnonzero(run[:last + 1] <= top)
            if sel.size >= 8 and top - bottom >= 10.0:
                t = sel * frame_s
                y = run[sel]
                slope, icpt = np.polyfit(t, y, 1)
                resid = y - (slope * t + icpt)
                r2 = 1.0 - resid.var() / max(y.var(), 1e-12)
                if slope < 0 and r2 >= 0.95:
                    est.append(-60.0 / slope)
        i = j + 1
    return float(np.median(est)) if est else None


def delay_time(env_db: np.ndarray, frame_s: float, note_frames: np.ndarray) -> float | None:
    """Echo delay (s) from repeated, consistently quieter onsets; None when none is found."""
    if note_frames.size < 4:
        return None
    level = np.array([env_db[f:f + 4].max() for f in note_frames])
    strong = note_frames[level >= np.percentile(level, 50)]
    tol = max(1, int(round(0.01 / frame_s)))
    best, best_lag = 0.0, None
    onset_set = np.zeros(env_db.size + 1, dtype=bool)
    onset_set[note_frames] = True
    lvl_at = dict(zip(note_frames.tolist(), level.tolist()))
    for lag in range(int(0.06 / frame_s), int(1.5 / frame_s) + 1):
        drops = []
        for f in strong:
            lo, hi = f + lag - tol, f + lag + tol + 1
            if hi > env_db.size:
                continue
            hit = np.flatnonzero(onset_set[lo:hi])
            if hit.size:
                drops.append(lvl_at[f] - lvl_at[int(lo + hit[0])])
        if len(drops) < 3:
            continue
        d = np.array(drops)
        ok = (d >= 1.5) & (d <= 30.0) & (np.abs(d - np.median(d)) <= 2.0)
        share = ok.sum() / strong.size
        if share > best + 1e-9:
            best, best_lag = share, lag
    return best_lag * frame_s if best_lag is not None and best >= 0.5 else None


def sidechain(env_db: np.ndarray, frame_s: float, beats_s) -> tuple[float | None, float | None]:
    """(depth_db, rate_hz) of the beat-locked gain modulation of a dB envelope."""
    beats = np.asarray(beats_s, dtype=np.float64)
    if beats.size < 8:
        return None, None
    t = np.arange(env_db.size) * frame_s
    env_db = np.maximum(env_db, env_db.max() - SIDECHAIN_RANGE_DB)  # gaps of silence are not pumping
    folds = {}
    for per_beat, step in ((2, 0.5), (1, 1.0), (0.5, 2.0)):
        # fold period = step beats: edges every `step` beats
        if step == 0.5:
            edges = np.sort(np.concatenate((beats, 0.5 * (beats[1:] + beats[:-1]))))
        elif step == 1.0:
            edges = beats
        else:
            edges = beats[::2]
        if edges.size < 5:
            continue
        rows = []
        for a, b in zip(edges[:-1], edges[1:]):
            ph = a + (b - a) * (np.arange(PHASE_BINS) + 0.5) / PHASE_BINS
            rows.append(np.interp(ph, t, env_db))
        rows = np.array(rows)
        # each fold's own level removed: the element's slow level changes are not pumping
        rows = rows - rows.mean(axis=1, keepdims=True)
        prof = np.median(rows, axis=0)
        explained = 1.0 - ((rows - prof[None, :]) ** 2).sum() / max((rows ** 2).sum(), 1e-12)
        folds[per_beat] = (prof, explained)
    if not folds:
        return None, None
    # one pump per beat unless half beats repeat as well (twice per beat) or only pairs of
    # beats repeat clearly better (once per two beats)
    per_beat = 1 if 1 in folds else next(iter(folds))
    if 2 in folds and folds[2][1] >= folds[per_beat][1] - 0.02:
        per_beat = 2
    elif 0.5 in folds and folds[0.5][1] > folds[per_beat][1] + 0.15:
        per_beat = 0.5
    prof = folds[per_beat][0]
    depth = float(prof.max() - prof.min())
    rate = per_beat * 60.0 / float(np.median(np.diff(beats))) / 60.0
    return depth, rate


def filter_cutoff(x: np.ndarray, sample_rate: int, frame_s: float = 0.1) -> tuple:
    """((time_s, cutoff_hz), ...) per frame_s frame with a detected low-pass corner."""
    mono = x.mean(axis=1)
    n_fft = 1 << int(round(math.log2(sample_rate * 0.093)))
    hop = int(round(frame_s * sample_rate))
    f_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    hi_hz = min(16000.0, 0.45 * sample_rate)
    edges = 100.0 * 2.0 ** (np.arange(0, math.log2(hi_hz / 100.0), 1.0 / 6.0))
    band = np.searchsorted(edges, f_hz) - 1
    nb = edges.size - 1
    centres = np.log2(np.sqrt(edges[:-1] * edges[1:]))
    cand = np.arange(3, nb - 3)
    win = np.hanning(n_fft)
    frames = []
    for start in range(0, max(mono.size - n_fft, 0) + 1, hop):
        seg = mono[start:start + n_fft]
        if seg.size < n_fft:
            break
        db = 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(seg * win)), 1e-10))
        # the peak envelope: spectral peaks only, the loudest per band. A band between two
        # harmonics of a low note holds only leakage and would pull the fit down.
        pk = np.flatnonzero((db[1:-1] > db[:-2]) & (db[1:-1] >= db[2:])) + 1
        pk = pk[(band[pk] >= 0) & (band[pk] < nb)]
        y = np.full(nb, -np.inf)
        np.maximum.at(y, band[pk], db[pk])
        frames.append((start, y))
    peak_all = max((y.max() for _, y in frames), default=-np.inf)
    out = []
    for start, y in frames:
        if y.max() < peak_all - 40.0:
            continue
        have = np.isfinite(y) & (y >= y.max() - CUTOFF_FIT_RANGE_DB)
        if have.sum() < 8:
            continue
        xs, ys = centres[have], y[have]
        # the hinge model y = a + b x + c max(x - x_c, 0) for every candidate corner x_c,
        # least squares by the normal equations, all candidates at once
        A = np.stack((np.ones((cand.size, xs.size)), np.broadcast_to(xs, (cand.size, xs.size)),
                      np.maximum(xs[None, :] - centres[cand][:, None], 0.0)), axis=2)
        AtA = np.einsum("kni,knj->kij", A, A) + 1e-9 * np.eye(3)
        coef = np.linalg.solve(AtA, np.einsum("kni,n->ki", A, ys)[..., None])[..., 0]
        err = ((np.einsum("kni,ki->kn", A, coef) - ys) ** 2).sum(axis=1)
        # a corner needs points on both sides of it
        sides = (xs[None, :] < centres[cand][:, None]).sum(axis=1)
        err = np.where((sides >= 3) & (sides <= xs.size - 3), err, np.inf)
        k = int(np.argmin(err))
        if np.isfinite(err[k]) and coef[k, 2] <= -CUTOFF_MIN_DROP_DB_OCT:
            out.append(((start + n_fft / 2) / sample_rate, float(2.0 ** centres[cand[k]])))
    return tuple(out)


def element_profile(x: np.ndarray, sample_rate: int, tempo: TempoBeats) -> ElementProfile:
    """Everything of the module docstring for one stem x: (frames, channels) float64."""
    env, frame_s = envelope(x, sample_rate)
    env_db = _db(env)
    notes = onsets(env_db, frame_s) if env.size else np.zeros(0, dtype=np.int64)
    a = adsr(env, frame_s, notes)
    depth, rate = sidechain(env_db, frame_s, tempo.beats_s)
    fc = filter_cutoff(x, sample_rate)
    move = None
    if len(fc) >= 3:
        v = np.log2([f for _, f in fc])
        move = float(np.percentile(v, 95) - np.percentile(v, 5))
    return ElementProfile(adsr=a, rt60_s=_rt60_env(env_db, frame_s), delay_s=delay_time(env_db, frame_s, notes),
                          sidechain_depth_db=depth, sidechain_rate_hz=rate, filter_cutoff=fc,
                          filter_movement_octaves=move)
