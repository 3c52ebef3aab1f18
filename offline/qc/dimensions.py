"""The 12 quality dimensions: each compares aligned A and B and returns a 0-100 score and its measured figures.

Each function takes the aligned pair (``align.Aligned``) and returns (score, details).
The formulas, units and reasons are in docs/qc.md; the constants below are their scales.
"""

import math

import numpy as np

from auracore.kernels.loudness import LoudnessMeter

from .timemap import TimeMap

OWN_TIME = TimeMap()  # B's own time: the default of every dimension that compares in time

MEL_BANDS = 64
MEL_LOW_HZ = 30.0
MEL_HIGH_HZ = 16000.0
MEL_FFT_S = 0.043              # 2048 frames at 48 kHz
MEL_RANGE_DB = 80.0
SPECTRAL_SCALE_DB = 6.0        # long-term mel spectrum distance at which the score falls to 1/e
WIDTH_SCALE_DB = 6.0
ENERGY_HOP_S = 0.1
ENERGY_WINDOW_S = 0.4
DYNAMICS_SCALE_DB = 6.0        # summed |differences| of crest factor, PLR and LRA
NOTE_ONSET_TOLERANCE_S = 0.05
EMBED_FLOOR = 0.5              # mean cosine similarity scoring 0


def _mono(x):
    return x.mean(axis=1)


def _mel_filters(sample_rate: int, n_fft: int) -> np.ndarray:
    high = min(MEL_HIGH_HZ, 0.45 * sample_rate)

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(MEL_LOW_HZ), mel(high), MEL_BANDS + 2) / 2595.0) - 1.0)
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    fb = np.zeros((MEL_BANDS, f.shape[0]))
    for k in range(MEL_BANDS):
        lo, c, hi = edges[k], edges[k + 1], edges[k + 2]
        fb[k] = np.clip(np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)), 0.0, None)
    return fb


def mel_hop_s(sample_rate: int) -> float:
    return (1 << int(round(math.log2(MEL_FFT_S * sample_rate)))) // 2 / sample_rate


def mel_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mel spectrogram of the mono mix in dB: (frames, MEL_BANDS); Hann frames of about
    43 ms, hop half of it."""
    n_fft = 1 << int(round(math.log2(MEL_FFT_S * sample_rate)))
    hop = n_fft // 2
    mono = _mono(x)
    n = 1 + max(mono.shape[0] - n_fft, 0) // hop
    fb = _mel_filters(sample_rate, n_fft)
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    out = np.empty((n, MEL_BANDS))
    for s in range(0, n, 2048):
        idx = np.arange(s, min(n, s + 2048))[:, None] * hop + np.arange(n_fft)[None, :]
        seg = np.take(np.pad(mono, (0, n_fft)), idx).astype(np.float32) * win
        p = np.abs(np.fft.rfft(seg, axis=1)) ** 2
        out[s:s + idx.shape[0]] = 10 * np.log10(p @ fb.T + 1e-12)
    return out


def mel_pair(al) -> tuple:
    """(A's mel_db, B's mel_db, hop_s): what ``spectral`` and ``arrangement`` read."""
    return mel_db(al.a, al.sample_rate), mel_db(al.b, al.sample_rate), mel_hop_s(al.sample_rate)


def _paired_mels(mels: tuple, tmap: TimeMap) -> tuple:
    """(A's frame times s, A's and B's mel frames paired on A's time by tmap and floored
    MEL_RANGE_DB under A's loudest, the frames where A is within 60 dB of its loudest);
    mels: ``mel_pair``'s (A's mel_db, B's mel_db, hop_s)."""
    ma, mb, hop_s = mels
    ia, ib = tmap.frames(ma.shape[0], mb.shape[0], hop_s)
    floor = ma[ia].max() - MEL_RANGE_DB
    ma, mb = np.maximum(ma[ia], floor), np.maximum(mb[ib], floor)
    frame_db = 10 * np.log10(np.mean(10 ** (ma / 10), axis=1))
    return ia * hop_s, ma, mb, frame_db > frame_db.max() - 60.0


def spectral(al, tmap: TimeMap = OWN_TIME, mels: tuple | None = None) -> tuple[float, dict]:
    """Mel-spectrogram similarity: the mean per-frame Pearson correlation r of the two mel
    spectra (dB, over frames where A is within 60 dB of its loudest frame; frames paired on
    A's time by tmap, a ``timemap.TimeMap``, default B's own) times exp(-d /
    SPECTRAL_SCALE_DB), d the mean |difference| of the time-averaged mel spectra (dB).
    mels: ``mel_pair(al)`` when the caller has them."""
    _, ma, mb, active = _paired_mels(mels if mels is not None else mel_pair(al), tmap)
    za = ma[active] - ma[active].mean(axis=1, keepdims=True)
    zb = mb[active] - mb[active].mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(za ** 2, axis=1) * np.sum(zb ** 2, axis=1))
    r = float(np.mean(np.where(den > 0, np.sum(za * zb, axis=1) / np.maximum(den, 1e-12), 1.0)))
    la = 10 * np.log10(np.mean(10 ** (ma[active] / 10), axis=0))
    lb = 10 * np.log10(np.mean(10 ** (mb[active] / 10), axis=0))
    d = float(np.mean(np.abs(la - lb)))
    score = 100.0 * max(r, 0.0) * math.exp(-d / SPECTRAL_SCALE_DB)
    return score, {"mel_correlation": r, "long_term_distance_db": d}


WIDTH_BANDS_HZ = tuple(62.5 * 2 ** k for k in range(9))   # octaves 62.5 Hz .. 16 kHz
WIDTH_FFT = 8192


def side_mid_ratio(x: np.ndarray) -> float:
    """Side energy over mid energy, broadband (0 for mono)."""
    if x.shape[1] < 2:
        return 0.0
    m = np.sum((x[:, 0] + x[:, 1]) ** 2)
    s = np.sum((x[:, 0] - x[:, 1]) ** 2)
    return float(s / m) if m > 0 else 0.0


def band_side_mid(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per octave band (WIDTH_BANDS_HZ centres): side/mid energy ratio, and the band's
    mid+side energy; Hann segments of WIDTH_FFT frames end to end."""
    bands = len(WIDTH_BANDS_HZ)
    if x.shape[1] < 2:
        return np.zeros(bands), np.ones(bands)
    m, s = x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]
    n = max(1, m.shape[0] // WIDTH_FFT)
    pad = n * WIDTH_FFT - m.shape[0]
    if pad > 0:
        m, s = np.pad(m, (0, pad)), np.pad(s, (0, pad))
    win = np.hanning(WIDTH_FFT)
    pm = np.sum(np.abs(np.fft.rfft(m[:n * WIDTH_FFT].reshape(n, WIDTH_FFT) * win, axis=1)) ** 2, axis=0)
    ps = np.sum(np.abs(np.fft.rfft(s[:n * WIDTH_FFT].reshape(n, WIDTH_FFT) * win, axis=1)) ** 2, axis=0)
    f = np.fft.rfftfreq(WIDTH_FFT, 1.0 / sample_rate)
    ratio, energy = np.zeros(bands), np.zeros(bands)
    for k, c in enumerate(WIDTH_BANDS_HZ):
        sel = (f >= c / np.sqrt(2)) & (f < c * np.sqrt(2))
        em, es = pm[sel].sum(), ps[sel].sum()
        ratio[k] = es / em if em > 0 else 0.0
        energy[k] = em + es
    return ratio, energy


def width(al) -> tuple[float, dict]:
    """Stereo width, band by band so that a change of tonal balance does not read as one of
    width: d = the mean over octave bands (62.5 Hz - 16 kHz, those within 40 dB of A's
    loudest band) of |10 log10 (side/mid of B / side/mid of A)| (ratios floored at -40 dB);
    score 100 exp(-d / WIDTH_SCALE_DB)."""
    ra, ea = band_side_mid(al.a, al.sample_rate)
    rb, _ = band_side_mid(al.b, al.sample_rate)
    used = ea > ea.max() * 1e-4
    diffs = np.abs(10 * np.log10(np.maximum(rb, 1e-4) / np.maximum(ra, 1e-4)))
    d = float(np.mean(diffs[used]))
    return 100.0 * math.exp(-d / WIDTH_SCALE_DB), {"a_side_mid_ratio": side_mid_ratio(al.a),
                                                   "b_side_mid_ratio": side_mid_ratio(al.b),
                                                   "band_difference_db": d}


def energy_curve(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Momentary loudness (LUFS, 400 ms) every 100 ms, floored at -70; NaN where the window
    reaches back before the signal's start (the meter counts that time as silence, so the
    first points read the first few milliseconds alone)."""
    m = LoudnessMeter(sample_rate, x.shape[1], true_peak=False)
    n_hops = int(x.shape[0] / (m.hop)) + 2
    m.hop_log_enable(n_hops)
    m.process(np.ascontiguousarray(x))
    log = m.hop_log()
    step = max(1, int(round(ENERGY_HOP_S * sample_rate / m.hop)))
    out = np.maximum(log["momentary_lufs"][::step], -70.0)
    out[log["time_s"][::step] < ENERGY_WINDOW_S - 0.5 * m.hop / sample_rate] = np.nan
    return out


def energy(al, tmap: TimeMap = OWN_TIME) -> tuple[float, dict]:
    """Energy-curve correlation: Pearson r of A's and B's momentary loudness every 100 ms
    (LUFS, after the gain alignment; points paired on A's time by tmap, default B's own);
    score 100 max(r, 0)."""
    ea, eb = energy_curve(al.a, al.sample_rate), energy_curve(al.b, al.sample_rate)
    ia, ib = tmap.frames(ea.shape[0], eb.shape[0], ENERGY_HOP_S)
    ea, eb = ea[ia], eb[ib]
    full = np.isfinite(ea) & np.isfinite(eb)  # both windows within their signals
    ea, eb, n = ea[full], eb[full], int(np.count_nonzero(full))
    if np.std(ea) < 1e-9 or np.std(eb) < 1e-9:
        r = 1.0 if np.allclose(ea, eb, atol=0.1) else 0.0
    else:
        r = float(np.corrcoef(ea, eb)[0, 1])
    return 100.0 * max(r, 0.0), {"correlation": r, "points": int(n)}


def dynamics_figures(x: np.ndarray, sample_rate: int) -> dict:
    """Crest factor (dB), PLR (dB) and LRA (LU) of x."""
    m = LoudnessMeter(sample_rate, x.shape[1])
    m.process(np.ascontiguousarray(x))
    m.process(np.zeros((64, x.shape[1])))
    rms = math.sqrt(float(np.mean(x ** 2)))
    peak = float(np.max(np.abs(x)))
    tp = float(np.max(m.true_peak_dbtp))
    lufs = m.integrated_lufs
    return {"crest_factor_db": 20 * math.log10(peak / rms) if rms > 0 and peak > 0 else 0.0,
            "plr_db": tp - lufs if math.isfinite(lufs) else 0.0,
            "lra_lu": m.loudness_range_lu}


def dynamics(al) -> tuple[float, dict]:
    """Dynamic range: d = |delta crest factor| + |delta PLR| (dB) + |delta LRA| (LU); score
    100 exp(-d / DYNAMICS_SCALE_DB)."""
    fa, fb = dynamics_figures(al.a, al.sample_rate), dynamics_figures(al.b, al.sample_rate)
    d = sum(abs(fa[k] - fb[k]) for k in fa)
    return 100.0 * math.exp(-d / DYNAMICS_SCALE_DB), {"a": fa, "b": fb, "difference": d}


def note_f1(ref: list, est: list, tolerance_s: float = NOTE_ONSET_TOLERANCE_S, pitch: bool = True) -> float:
    """F1 of note onsets (s) (and MIDI pitches when pitch): each reference note matches at
    most one estimate of the same pitch within tolerance_s (greedy by distance). 1 when
    both are empty."""
    if not ref and not est:
        return 1.0
    if not ref or not est:
        return 0.0
    pairs = []
    for i, (ta, pa) in enumerate(ref):
        for j, (tb, pb) in enumerate(est):
            if abs(ta - tb) <= tolerance_s and (not pitch or pa == pb):
                pairs.append((abs(ta - tb), i, j))
    pairs.sort()
    used_i, used_j = set(), set()
    hits = 0
    for _, i, j in pairs:
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            hits += 1
    p, r = hits / len(est), hits / len(ref)
    return 0.0 if hits == 0 else 2 * p * r / (p + r)


def embedding_similarity(ea: np.ndarray, eb: np.ndarray, tmap: TimeMap = OWN_TIME, hop_s: float = 0.0) -> float:
    """Mean cosine similarity of paired embeddings (N, D) each: block k with block k, or
    the blocks (hop_s apart) that tmap puts together on A's time."""
    ia, ib = tmap.frames(ea.shape[0], eb.shape[0], hop_s)
    a, b = ea[ia], eb[ib]
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(den, 1e-12)))


# ---------------------------------------------------------------- from the profiles of A and B

SECTION_SCALE_DB = 3.0         # mean |section RMS difference| at which the score falls to 1/e
CHORD_GRID_S = 0.1
REVERB_SCALE_OCTAVES = 0.5     # |log2(RT60 B / RT60 A)| at which the score falls to 1/e
REVERB_SCALE_S = 0.5           # |reverberation time B adds or lacks| (s, dense music) at which it falls to 1/e
BPM_SCALE_OCTAVES = 0.05       # |log2(tempo B / tempo A)| at which the score falls to 1/e (3.5 %)
TEMPO_TIE_SHARE = 0.9          # an octave-family candidate scoring this share of the best is a reading too
BOUNDARY_TOLERANCE_S = 3.0


def _rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(x ** 2)) + 1e-20)


def rms_per_section(al, prof_a, tmap: TimeMap = OWN_TIME) -> tuple[float | None, dict]:
    """RMS per section: over A's sections (A's profile), the differences RMS of B - RMS of A
    (dB) on the same spans of the aligned signals (B's span through tmap, default its own
    time), less their duration-weighted mean; d = the duration-weighted mean of their
    |values|; score 100 exp(-d / SECTION_SCALE_DB). The mean is taken out because the gain
    alignment brings B to A's integrated loudness (K-weighted) and this reads RMS
    (unweighted): a change of tonal balance alone moved every section's RMS by one amount
    and read as a level error in each. What is left is the balance between the sections;
    with one section (of 0.1 s or more) there is none: None."""
    spans = [(s.start_s, s.end_s) for s in prof_a.sections] or [(0.0, al.a.shape[0] / al.sample_rate)]
    diffs, weights = [], []
    sr = al.sample_rate
    for t0, t1 in spans:
        t0, t1 = max(t0, tmap.start_s), min(t1, tmap.end_s)
        i0, i1 = int(t0 * sr), min(int(t1 * sr), al.a.shape[0])
        j0, j1 = max(0, int(tmap.to_b(t0) * sr)), min(int(tmap.to_b(t1) * sr), al.b.shape[0])
        if i1 - i0 < int(0.1 * sr) or j1 - j0 < int(0.1 * sr):
            continue
        diffs.append(_rms_db(al.b[j0:j1]) - _rms_db(al.a[i0:i1]))
        weights.append(i1 - i0)
    if len(diffs) < 2:
        return None, {"sections": len(diffs), "unavailable": "A has one section: no balance between sections "
                      "to compare"}
    common = float(np.average(diffs, weights=weights))
    d = float(np.average(np.abs(np.subtract(diffs, common)), weights=weights))
    return 100.0 * math.exp(-d / SECTION_SCALE_DB), {"sections": len(diffs), "mean_difference_db": d,
                                                     "common_difference_db": common,
                                                     "differences_db": [round(v, 3) for v in diffs]}


def _chord_at(chords, t: float) -> str:
    for a, b, label in chords:
        if a <= t < b:
            return label
    return "N"


def harmonic_progression(prof_a, prof_b, duration_s: float, tmap: TimeMap = OWN_TIME) -> tuple[float, dict]:
    """Chords: on a 100 ms grid over the aligned span, the share of the points where A has a
    chord (not N) at which B's chord (its own profile, at the point's time on B's side
    through tmap, default the same time) has the same root and quality; score 100 x that
    share (100 when A has no chord anywhere and B none either)."""
    grid = np.arange(0.0, duration_s, CHORD_GRID_S)
    grid = grid[tmap.inside(grid)]
    grid_b = tmap.to_b(grid)
    la = [_chord_at(prof_a.chords, t) for t in grid]
    lb = [_chord_at(prof_b.chords, t) for t in grid_b]
    on = [i for i, c in enumerate(la) if c != "N"]
    if not on:
        agree = 1.0 if all(c == "N" for c in lb) else 0.0
    else:
        agree = sum(la[i] == lb[i] for i in on) / len(on)
    return 100.0 * agree, {"agreement": agree, "points": len(on)}


def reverb(rt_a: float | None, rt_b: float | None, mod_a=None, mod_b=None) -> tuple[float | None, dict]:
    """Reverb. Where both have a free decay of 20 dB (the profile's blind RT60 of each, s):
    d = |log2(RT60 B / RT60 A)|, score 100 exp(-d / REVERB_SCALE_OCTAVES). Otherwise (dense
    music) from the modulation spectra of the level envelopes (``modulation.py``): T = the
    reverberation time B adds (or lacks), score 100 exp(-|T| / REVERB_SCALE_S). None when
    neither can be measured (no free decay and under 2 s of audio)."""
    if rt_a is not None and rt_b is not None and rt_a > 0 and rt_b > 0:
        d = abs(math.log2(rt_b / rt_a))
        return 100.0 * math.exp(-d / REVERB_SCALE_OCTAVES), {"basis": "rt60", "a_rt60_s": rt_a, "b_rt60_s": rt_b,
                                                            "octaves": d}
    if mod_a is None or mod_b is None:
        return None, {"a_rt60_s": rt_a, "b_rt60_s": rt_b, "unavailable": "no free decay of 20 dB or more in "
                      + ("A" if rt_a is None else "B") + ", and under 2 s for the modulation spectra"}
    from .modulation import added_reverb_s

    fit = added_reverb_s(mod_a, mod_b)
    return 100.0 * math.exp(-abs(fit["added_reverb_s"]) / REVERB_SCALE_S), {
        "basis": "modulation", "a_rt60_s": rt_a, "b_rt60_s": rt_b, **fit}


def _tempo_readings(tempo: float, candidates) -> list:
    """The tempo and the candidates of its octave family (``TempoBeats.tempo_candidates``)
    scoring within TEMPO_TIE_SHARE of the best: the readings the profile could not tell apart."""
    out = [float(tempo)]
    scores = [s for _, s in candidates or ()]
    if scores and max(scores) > 0:
        out += [float(b) for b, s in candidates if s >= TEMPO_TIE_SHARE * max(scores)]
    return out


def bpm(tempo_a: float | None, tempo_b: float | None, candidates_a=(), candidates_b=()) -> tuple[float | None, dict]:
    """BPM: d = |log2(tempo B / tempo A)| (each from its own profile), the closest pair of
    each side's readings (its tempo, and the octave-family candidates, x2, x1/2, x3/2, x2/3 ...,
    that its profile scored within TEMPO_TIE_SHARE of the best: a tie the reader broke by a
    hair, which a level or an EQ can flip); score 100 exp(-d / BPM_SCALE_OCTAVES): 2 % off
    scores 57, 5 % 24, 10 % 6. None without a tempo."""
    if not tempo_a or not tempo_b:
        return None, {"a_bpm": tempo_a, "b_bpm": tempo_b, "unavailable": "no tempo found"}
    ra, rb = _tempo_readings(tempo_a, candidates_a), _tempo_readings(tempo_b, candidates_b)
    d, ta, tb = min((abs(math.log2(y / x)), x, y) for x in ra for y in rb)
    return 100.0 * math.exp(-d / BPM_SCALE_OCTAVES), {"a_bpm": tempo_a, "b_bpm": tempo_b, "octaves": d,
                                                      "compared_bpm": [ta, tb]}


def _boundaries(prof, duration_s: float) -> list:
    return [s.start_s for s in prof.sections if 0.5 < s.start_s < duration_s - 0.5]


STRUCTURE_FLOOR_DB = 50.0     # each frame's mel bands floored this far under its loudest band
STRUCTURE_MIN_DB = 1.0        # the least section-to-section distance a side's distances are scaled by
MIN_SECTION_FRAMES = 8


def _section_means(m: np.ndarray, t: np.ndarray, edges: list, active: np.ndarray) -> np.ndarray:
    """Each section's mean of the level-free mel frames m (rows at A's times t, active
    frames only); NaN rows for sections with too few frames."""
    out = np.full((len(edges) - 1, m.shape[1]), np.nan)
    for k, (s, e) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (t >= s) & (t < e) & active
        if np.count_nonzero(sel) >= MIN_SECTION_FRAMES:
            out[k] = m[sel].mean(axis=0)
    return out


def _level_free(m: np.ndarray) -> np.ndarray:
    """Mel frames (dB) floored STRUCTURE_FLOOR_DB under each frame's loudest band, each
    frame's mean taken out: a level change, per frame or per section, leaves them as they are."""
    m = np.maximum(m, m.max(axis=1, keepdims=True) - STRUCTURE_FLOOR_DB)
    return m - m.mean(axis=1, keepdims=True)


def structure(mels: tuple, edges: list, tmap: TimeMap = OWN_TIME) -> tuple[float, dict]:
    """Whether B repeats what A repeats, on A's sections (edges: A's section edges, s).

    mels: (A's mel_db, B's mel_db, hop_s). Each side's level-free mean mel spectrum per
    section (B's frames on A's time by tmap); the mean |difference| (dB) between every two
    sections gives each side a distance matrix, scaled by its largest distance (at least
    STRUCTURE_MIN_DB); S = 1 - sum w |dA - dB| / sum w max(dA, dB), w the product of the two
    sections' lengths. A global EQ, a level per section or another timbre everywhere leaves
    S near 1; a section swapped with another unlike it moves it. 1 with fewer than three
    sections (two sections are always as far apart on both sides)."""
    t, ma, mb, active = _paired_mels(mels, tmap)
    va, vb = (_section_means(_level_free(m), t, edges, active) for m in (ma, mb))
    keep = ~(np.isnan(va).any(axis=1) | np.isnan(vb).any(axis=1))
    lengths = np.diff(np.asarray(edges, dtype=np.float64))[keep]
    va, vb = va[keep], vb[keep]
    n = va.shape[0]
    if n < 3:
        return 1.0, {"sections": int(n)}
    iu = np.triu_indices(n, 1)
    da = np.mean(np.abs(va[:, None, :] - va[None, :, :]), axis=2)[iu]
    db = np.mean(np.abs(vb[:, None, :] - vb[None, :, :]), axis=2)[iu]
    na, nb = da / max(da.max(), STRUCTURE_MIN_DB), db / max(db.max(), STRUCTURE_MIN_DB)
    w = (lengths[:, None] * lengths[None, :])[iu]
    s = 1.0 - float(np.sum(w * np.abs(na - nb)) / max(np.sum(w * np.maximum(na, nb)), 1e-12))
    return s, {"sections": int(n), "a_distances_db": [round(float(v), 2) for v in da],
               "b_distances_db": [round(float(v), 2) for v in db]}


def arrangement(al, prof_a, prof_b, tmap: TimeMap = OWN_TIME, mels: tuple | None = None) -> tuple[float, dict]:
    """Arrangement: where the sections change and what repeats. F: the F-measure of B's
    inner section boundaries (on A's time through tmap, default its own) against A's (each
    from its own profile) within +-BOUNDARY_TOLERANCE_S, each boundary matched once (1 when
    neither has an inner boundary); S: ``structure`` on A's sections. Score 100 F S.
    mels: (A's mel_db, B's mel_db, hop_s) when the caller has them (default: computed)."""
    duration_s = al.a.shape[0] / al.sample_rate
    ba, bb = _boundaries(prof_a, duration_s), _boundaries(prof_b, duration_s)
    ref, est = tmap.events([(t, 0) for t in ba], [(t, 0) for t in bb])
    ba, bb = [t for t, _ in ref], [t for t, _ in est]
    f = note_f1([(t, 0) for t in ba], [(t, 0) for t in bb], tolerance_s=BOUNDARY_TOLERANCE_S, pitch=False)
    if mels is None:
        mels = mel_pair(al)
    same, info = structure(mels, [0.0] + sorted(ba) + [duration_s], tmap)
    return 100.0 * f * same, {"f_measure": f, "structure": same, "a_boundaries_s": [round(t, 2) for t in ba],
                              "b_boundaries_s": [round(t, 2) for t in bb], "structure_details": info,
                              "a_labels": [sec.label for sec in prof_a.sections],
                              "b_labels": [sec.label for sec in prof_b.sections]}
