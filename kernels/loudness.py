"""Streaming EBU R128 loudness meter: momentary, short-term, integrated, LRA, true and sample peak.

ITU-R BS.1770-4 / EBU Tech 3341 and 3342, in constant memory, allocation-free per block.

- K-weighting (``kweighting.design_kweighting``) for the actual rate, per channel.
- Every hop (10 ms or less) the weighted sum of squares of that hop goes into a ring;
  momentary (400 ms) and short-term (3 s) are the means of the last 4 x or 30 x the
  100 ms step. Hops lie on one sample-count grid from the start of the stream, so the
  readings do not depend on how the stream is cut into blocks. The step is libebur128's
  ``(rate + 5) // 10`` frames; the hop is its largest divisor no longer than a tenth of it
  (480 frames at 48 kHz, 441 at 44.1 kHz, 147 at 22.05 kHz; a prime step, as at 11.025
  kHz, makes it 1 frame: still exact, and running window sums keep that affordable).
- Integrated: a 400 ms gating block at every 100 ms step, absolute gate -70 LUFS, relative
  gate -10 LU. LRA (Tech 3342): a short-term value every 1 s from the 3 s point (as
  libebur128), absolute gate -70 LUFS, relative gate -20 LU, 10th to 95th percentile with
  libebur128's index ``int((n - 1) * p + 0.5)``. Both keep histograms of 0.01 LU bins from
  -70 to +30 LUFS holding a COUNT and an ENERGY SUM per bin, so gating and means are exact
  except for the one bin the relative gate cuts (taken whole if its mean passes) and each
  percentile reads its bin's mean: I within 0.01 LU, LRA within 0.02 LU of the exact
  figures (in practice ~0.001 LU).
- Maxima of momentary and short-term count full windows only (from 400 ms / 3 s into the
  stream or after ``reset_integrated``, which restarts integrated, LRA, maxima and peaks
  as a fresh meter would, from the next hop boundary).
- True peak per channel through ``truepeak.truepeak_max`` (the estimator of
  ``truepeak_process``, keeping exact maxima while skipping what provably stays under
  them); sample peak per channel. The true-peak estimate lags by ``truepeak.TP_DELAY``
  frames: the last frames of a stream count only when more audio (or silence) follows.
- Filter states below 1e-30 (and non-finite ones) are flushed to 0 at every hop, so long
  silences never run on denormals and a NaN in the input spoils the readings for one
  window at most.

State lives in ``LoudnessMeter.arrays`` (a ``MeterArrays``: numpy arrays by name), so a
Numba caller can run ``meter_process(x, arrays)`` and ``meter_reset(arrays)`` itself.
"""

import math
from typing import NamedTuple

import numpy as np
from .jit import njit

from .kweighting import design_kweighting
from .truepeak import TAPS, TruePeakState, truepeak_max

LUFS_OFFSET = -0.691
ABS_GATE_LUFS = -70.0
REL_GATE_LU = -10.0
LRA_REL_GATE_LU = -20.0
LRA_LOW = 0.10
LRA_HIGH = 0.95
HIST_LOW_LUFS = -70.0
HIST_HIGH_LUFS = 30.0
HIST_BINS_PER_LU = 100
HIST_BINS = int((HIST_HIGH_LUFS - HIST_LOW_LUFS) * HIST_BINS_PER_LU)
# libebur128 keeps a block when its mean square is >= this (its gate is on energies)
ABS_GATE_ENERGY = 10.0 ** ((ABS_GATE_LUFS - LUFS_OFFSET) / 10.0)
REL_GATE_FACTOR = 10.0 ** (REL_GATE_LU / 10.0)
LRA_GATE_FACTOR = 10.0 ** (LRA_REL_GATE_LU / 10.0)
TINY_STATE = 1e-30
SURROUND_WEIGHT = 1.41

# the meter's scalar state: one record (a one-element structured array, which Numba reads
# and writes by field name)
SCALARS = np.dtype([
    # configuration
    ("hop", "i8"),          # frames per hop
    ("step_hops", "i8"),    # hops per 100 ms gating step
    ("m_hops", "i8"),       # hops per momentary window (4 steps)
    ("s_hops", "i8"),       # hops per short-term window (30 steps)
    ("lra_hops", "i8"),     # hops between LRA values (10 steps)
    ("true_peak", "i8"),    # 1 when true peak is measured
    # counters
    ("fill", "i8"),         # frames in the current hop so far
    ("hops", "i8"),         # hops completed since the stream began
    ("logged", "i8"),       # hops seen by the hop log since it was enabled
    ("start", "i8"),        # the last hop before the measurement (re)started: windows count from here
    ("tp_skip", "i8"),      # true-peak estimates still depending on audio from before the last reset
    ("tp_log_floor", "f8"), # the hop log's true-peak floor (linear; 0: every hop exact)
    # levels: mean squares (energies), not LUFS, then the windows' running sums
    ("m", "f8"),
    ("s", "f8"),
    ("m_max", "f8"),
    ("s_max", "f8"),
    ("sum_m", "f8"),
    ("sum_s", "f8"),
])


class MeterArrays(NamedTuple):
    """All of one meter's state as the kernels take it: arrays by name (each is the
    LoudnessMeter attribute of that name)."""
    scalars: np.ndarray        # (1,) SCALARS
    weights: np.ndarray        # (channels,) BS.1770 weights
    kw_sos: np.ndarray         # K-weighting
    kw_state: np.ndarray
    hop_sum: np.ndarray        # (channels,) weighted energy of the hop so far
    ring: np.ndarray           # hop energies over the short-term window
    gate_count: np.ndarray     # integrated loudness: histogram of gating blocks ...
    gate_energy: np.ndarray
    lra_count: np.ndarray      # ... and of short-term values (LRA)
    lra_energy: np.ndarray
    sample_peak: np.ndarray    # (channels,)
    true_peak_lin: np.ndarray  # (channels,)
    hop_true_peak: np.ndarray  # (channels,) the hop's (with the hop log on)
    tp_coefs: np.ndarray       # the true-peak estimator (kernels/truepeak.py)
    tp_hist: np.ndarray
    tp_prev3: np.ndarray
    tp_work: np.ndarray
    tp_discard: np.ndarray     # where estimates from before a reset go
    log_hop: np.ndarray        # the hop log: end hop ...
    log_levels: np.ndarray     # ... momentary and short-term energy ...
    log_true_peak: np.ndarray  # ... and per-channel true peak


def default_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights: (channels,) float64. 5 ch = L R C Ls Rs, 6 ch = L R C LFE Ls
    Rs (LFE 0, surrounds 1.41); every other count 1.0 per channel."""
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, SURROUND_WEIGHT, SURROUND_WEIGHT])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, SURROUND_WEIGHT, SURROUND_WEIGHT])
    return np.ones(channels)


def hop_frames(sample_rate: float) -> tuple[int, int]:
    """(hop, step) in frames: step = libebur128's 100 ms, hop = its largest divisor <= step / 10.
    ValueError below 100 Hz."""
    step = int((sample_rate + 5) // 10)
    for hop in range(step // 10, 0, -1):
        if step % hop == 0:
            return hop, step
    raise ValueError(f"sample rate {sample_rate} Hz is too low for a loudness meter (min 100 Hz)")


def energy_to_lufs(energy: float) -> float:
    """Loudness (LUFS) of a channel-weighted K-weighted mean square; -inf for 0."""
    return LUFS_OFFSET + 10.0 * math.log10(energy) if energy > 0.0 else -math.inf


def _amplitude_db(lin: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(lin)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _kweight_pair(x, lo, hi, ca, cb, sos, state, hop_sum, peak):
    """K-weight rows lo..hi-1 of channels ca and cb side by side (two independent recursions
    keep the FPU busy), adding squared outputs to hop_sum and raising the sample peaks
    peak[ca], peak[cb] (linear); cb == ca for an odd last channel.

    sos: ``design_kweighting`` rows; the second is the RLB high-pass, whose numerator is
    (1 - z^-1)^2 at every rate, so only its poles are read. state: (channels, 6)
    direct-form-I memories [x1, x2, y1, y2, z1, z2] of the two biquads. The sums continue
    hop_sum's running value, so a hop cut by a block boundary adds up in the same order as
    one that is not.
    """
    b0, b1, b2, a1, a2 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 3], sos[0, 4]
    d1, d2 = sos[1, 3], sos[1, 4]
    xa1, xa2, ya1, ya2, za1, za2 = state[ca]
    xb1, xb2, yb1, yb2, zb1, zb2 = state[cb]
    ea = hop_sum[ca]
    eb = hop_sum[cb]
    pa = peak[ca]
    pb = peak[cb]
    for i in range(lo, hi):
        va = np.float64(x[i, ca])
        vb = np.float64(x[i, cb])
        ua = abs(va)
        ub = abs(vb)
        pa = ua if ua > pa else pa
        pb = ub if ub > pb else pb
        ya = b0 * va + b1 * xa1 + b2 * xa2 - a2 * ya2 - a1 * ya1
        yb = b0 * vb + b1 * xb1 + b2 * xb2 - a2 * yb2 - a1 * yb1
        za = (ya - 2.0 * ya1) + ya2 - d2 * za2 - d1 * za1
        zb = (yb - 2.0 * yb1) + yb2 - d2 * zb2 - d1 * zb1
        xa2 = xa1
        xa1 = va
        ya2 = ya1
        ya1 = ya
        za2 = za1
        za1 = za
        xb2 = xb1
        xb1 = vb
        yb2 = yb1
        yb1 = yb
        zb2 = zb1
        zb1 = zb
        ea += za * za
        eb += zb * zb
    state[cb, 0], state[cb, 1], state[cb, 2] = xb1, xb2, yb1
    state[cb, 3], state[cb, 4], state[cb, 5] = yb2, zb1, zb2
    state[ca, 0], state[ca, 1], state[ca, 2] = xa1, xa2, ya1
    state[ca, 3], state[ca, 4], state[ca, 5] = ya2, za1, za2
    hop_sum[cb] = eb
    hop_sum[ca] = ea
    peak[cb] = pb
    peak[ca] = pa


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sum(a, lo, hi):
    """sum(a[lo:hi]), vectorised; the order depends on lo and hi only, never on blocking."""
    s = 0.0
    for i in range(lo, hi):
        s += a[i]
    return s


@njit(cache=True, nogil=True)
def _window_sum(ring, h, hops):
    """Sum of the ring entries of hops h-hops+1 .. h (hop k lives at k % len(ring))."""
    size = ring.shape[0]
    end = h % size + 1
    start = end - hops
    if start >= 0:
        return _sum(ring, start, end)
    return _sum(ring, start + size, size) + _sum(ring, 0, end)


@njit(cache=True, nogil=True)
def _hist_add(count, energy_sum, energy):
    """File a gating block (or short-term value) of mean square `energy` if it passes the
    absolute gate; out-of-range loudness goes to the end bins, its energy still exact."""
    if energy >= ABS_GATE_ENERGY:
        pos = (LUFS_OFFSET + 10.0 * np.log10(energy) - HIST_LOW_LUFS) * HIST_BINS_PER_LU
        i = count.shape[0] - 1
        if pos < i:
            i = max(int(pos), 0)
        count[i] += 1
        energy_sum[i] += energy


@njit(cache=True, nogil=True)
def _end_hop(sc, weights, kw_state, hop_sum, ring, gate_count, gate_energy, lra_count, lra_energy, true_peak_lin,
             hop_true_peak, log_hop, log_levels, log_true_peak):
    """Close the hop: ring entry, momentary and short-term, maxima, gating block, LRA value,
    denormal flush, hop log. sc: the SCALARS record; the arrays are MeterArrays' (called
    with each, not the tuple: passing the whole tuple per hop costs more than the hop)."""
    h = sc.hops + 1
    sc.hops = h
    channels = hop_sum.shape[0]
    e = 0.0
    for c in range(channels):
        e += weights[c] * hop_sum[c]
        hop_sum[c] = 0.0
    hop = sc.hop
    m_hops = sc.m_hops
    s_hops = sc.s_hops
    size = ring.shape[0]
    leaving_m = ring[(h - m_hops) % size]
    leaving_s = ring[h % size]
    ring[h % size] = e
    if h % sc.step_hops == 0:
        # exact sums at every step (every gating block and LRA value is exact); between
        # steps the running sums move by one hop, so a small hop costs little and rounding
        # never builds up past one step
        sum_m = _window_sum(ring, h, m_hops)
        sum_s = _window_sum(ring, h, s_hops)
    else:
        sum_m = sc.sum_m + (e - leaving_m)
        sum_s = sc.sum_s + (e - leaving_s)
    sc.sum_m = sum_m
    sc.sum_s = sum_s
    em = max(sum_m, 0.0) / (m_hops * hop)
    es = max(sum_s, 0.0) / (s_hops * hop)
    sc.m = em
    sc.s = es
    since = h - sc.start
    if since >= m_hops:
        if em > sc.m_max:
            sc.m_max = em
        if since % sc.step_hops == 0:
            _hist_add(gate_count, gate_energy, em)
    if since >= s_hops:
        if es > sc.s_max:
            sc.s_max = es
        if since % sc.lra_hops == 0:
            _hist_add(lra_count, lra_energy, es)
    for c in range(channels):
        for k in range(kw_state.shape[1]):
            if not abs(kw_state[c, k]) >= TINY_STATE:  # also catches NaN
                kw_state[c, k] = 0.0
    if log_hop.shape[0] > 0:
        if sc.true_peak != 0:
            for c in range(channels):
                true_peak_lin[c] = max(true_peak_lin[c], hop_true_peak[c])
        k = sc.logged
        if k < log_hop.shape[0]:
            log_hop[k] = h
            log_levels[k, 0] = em
            log_levels[k, 1] = es
            for c in range(channels):
                log_true_peak[k, c] = hop_true_peak[c]
        sc.logged = k + 1
        for c in range(channels):
            # the next hop's estimate starts at its floor: what stays under it is skipped
            hop_true_peak[c] = min(true_peak_lin[c], sc.tp_log_floor)


@njit(cache=True, nogil=True)
def _true_peak(x, sc, tp_coefs, tp_hist, tp_prev3, tp_work, tp_discard, peak):
    """``truepeak_max`` over x into peak, but the estimates that still depend on audio from
    before a reset go to tp_discard."""
    skip = min(sc.tp_skip, x.shape[0])
    if skip > 0:
        truepeak_max(x[:skip], tp_coefs, tp_hist, tp_prev3, tp_work, tp_discard)
        sc.tp_skip -= skip
    truepeak_max(x[skip:], tp_coefs, tp_hist, tp_prev3, tp_work, peak)


@njit(cache=True, nogil=True)
def meter_process(x, m):
    """Meter x: (frames, channels) float32 or float64, any number of frames; m is
    ``LoudnessMeter.arrays`` (a MeterArrays). Allocates nothing."""
    frames, channels = x.shape
    # every array taken out of the tuple once
    sc, kw_sos, kw_state, hop_sum, sample_peak = m.scalars[0], m.kw_sos, m.kw_state, m.hop_sum, m.sample_peak
    tp_coefs, tp_hist, tp_prev3, tp_work, tp_discard = m.tp_coefs, m.tp_hist, m.tp_prev3, m.tp_work, m.tp_discard
    hop = sc.hop
    per_hop_peak = sc.true_peak != 0 and m.log_hop.shape[0] > 0
    pos = 0
    while pos < frames:
        fill = sc.fill
        n = min(hop - fill, frames - pos)
        for ca in range(0, channels, 2):
            _kweight_pair(x, pos, pos + n, ca, min(ca + 1, channels - 1), kw_sos, kw_state, hop_sum, sample_peak)
        if per_hop_peak:
            _true_peak(x[pos:pos + n], sc, tp_coefs, tp_hist, tp_prev3, tp_work, tp_discard, m.hop_true_peak)
        pos += n
        if fill + n < hop:
            sc.fill = fill + n
        else:
            sc.fill = 0
            _end_hop(sc, m.weights, kw_state, hop_sum, m.ring, m.gate_count, m.gate_energy, m.lra_count, m.lra_energy,
                     m.true_peak_lin, m.hop_true_peak, m.log_hop, m.log_levels, m.log_true_peak)
    if sc.true_peak != 0 and not per_hop_peak:
        _true_peak(x, sc, tp_coefs, tp_hist, tp_prev3, tp_work, tp_discard, m.true_peak_lin)


@njit(cache=True, nogil=True)
def _meter_flat(x, arrays):
    """``meter_process`` on MeterArrays rebuilt from a plain tuple: Numba types a plain tuple
    of arrays in its C fast path, a NamedTuple in Python (2 us more per call)."""
    meter_process(x, MeterArrays(*arrays))


@njit(cache=True, nogil=True)
def _reset_flat(arrays):
    """``meter_reset`` on MeterArrays rebuilt from a plain tuple (see ``_meter_flat``)."""
    meter_reset(MeterArrays(*arrays))


@njit(cache=True, nogil=True)
def meter_reset(m):
    """Restart integrated, LRA, maxima and peaks of ``LoudnessMeter.arrays`` as a fresh meter
    would from the next hop boundary: gating blocks, LRA values and maxima count only
    windows that lie wholly after it (their 100 ms and 1 s grids restart there), true peak
    only estimates made from audio after the reset. The filters and windows run on
    (momentary and short-term readings are unaffected)."""
    sc = m.scalars[0]
    # a hop already begun holds audio from before the reset: windows start after it
    sc.start = sc.hops + (1 if sc.fill > 0 else 0)
    # the estimator lags TP_DELAY frames and reaches HALF_TAPS beyond: the next TAPS - 1
    # estimates still depend on audio from before the reset
    sc.tp_skip = TAPS - 1
    m.gate_count[:] = 0
    m.gate_energy[:] = 0.0
    m.lra_count[:] = 0
    m.lra_energy[:] = 0.0
    sc.m_max = 0.0
    sc.s_max = 0.0
    m.sample_peak[:] = 0.0
    m.true_peak_lin[:] = 0.0
    m.hop_true_peak[:] = 0.0


@njit(cache=True, nogil=True)
def integrated_energy(gate_count, gate_energy):
    """Mean square of the gating blocks that pass both gates (0 when none): a bin of the
    histogram passes the relative gate when its mean does."""
    n = 0
    total = 0.0
    for i in range(gate_count.shape[0]):
        n += gate_count[i]
        total += gate_energy[i]
    if n == 0:
        return 0.0
    threshold = REL_GATE_FACTOR * total / n
    n = 0
    total = 0.0
    for i in range(gate_count.shape[0]):
        if gate_count[i] > 0 and gate_energy[i] >= threshold * gate_count[i]:
            n += gate_count[i]
            total += gate_energy[i]
    return total / n if n > 0 else 0.0


@njit(cache=True, nogil=True)
def loudness_range(lra_count, lra_energy):
    """LRA in LU from the short-term histogram (0 when no value passes the gates)."""
    bins = lra_count.shape[0]
    n = 0
    total = 0.0
    for i in range(bins):
        n += lra_count[i]
        total += lra_energy[i]
    if n == 0:
        return 0.0
    threshold = LRA_GATE_FACTOR * total / n
    first = 0
    while first < bins and not (lra_count[first] > 0 and lra_energy[first] >= threshold * lra_count[first]):
        first += 1
    n = 0
    for i in range(first, bins):
        n += lra_count[i]
    if n == 0:
        return 0.0
    low = int((n - 1) * LRA_LOW + 0.5)
    high = int((n - 1) * LRA_HIGH + 0.5)
    seen = 0
    low_energy = 0.0
    for i in range(first, bins):
        if lra_count[i] == 0:
            continue
        below = seen
        seen += lra_count[i]
        if below <= low < seen:
            low_energy = lra_energy[i] / lra_count[i]
        if below <= high < seen:
            return 10.0 * np.log10(lra_energy[i] / lra_count[i] / low_energy)
    return 0.0


class LoudnessMeter:
    """EBU R128 meter for one stream of (frames, channels) blocks; see the module docstring.

    sample_rate in Hz; weights: (channels,) BS.1770 weights (default ``default_weights``);
    true_peak: measure the true peak (most of the cost) or not.

    Readings are floats in LUFS / LU / dB, -inf when nothing was measured or all is below
    the gate (LRA: 0.0 then, as libebur128); ``true_peak_dbtp`` and ``sample_peak_dbfs``
    are (channels,) arrays, the maxima since the start or the last ``reset_integrated``
    (``true_peak_dbtp`` is None when true_peak=False).

    Per-hop series for plots: ``hop_log_enable(max_hops)`` preallocates a log that every
    later hop fills (end time, momentary, short-term, per-channel true peak of the hop);
    ``hop_log()`` returns what it holds. Hops past max_hops are counted, not stored.
    """

    def __init__(self, sample_rate: float, channels: int, weights=None, true_peak: bool = True):
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.true_peak = bool(true_peak)
        self.weights = default_weights(channels) if weights is None else np.array(weights, dtype=np.float64)
        if self.weights.shape != (channels,):
            raise ValueError(f"weights must have {channels} entries, got shape {self.weights.shape}")
        self.hop, step = hop_frames(sample_rate)
        step_hops = step // self.hop
        self.scalars = np.zeros(1, dtype=SCALARS)
        self.stats = self.scalars[0]  # the record, read and written by field name
        for name, value in (("hop", self.hop), ("step_hops", step_hops), ("m_hops", 4 * step_hops),
                            ("s_hops", 30 * step_hops), ("lra_hops", 10 * step_hops),
                            ("true_peak", int(self.true_peak))):
            self.stats[name] = value
        self.kw_sos = design_kweighting(sample_rate)
        self.kw_state = np.zeros((channels, 6))
        self.hop_sum = np.zeros(channels)
        self.ring = np.zeros(30 * step_hops)
        self.gate_count = np.zeros(HIST_BINS, dtype=np.int64)
        self.gate_energy = np.zeros(HIST_BINS)
        self.lra_count = np.zeros(HIST_BINS, dtype=np.int64)
        self.lra_energy = np.zeros(HIST_BINS)
        self.sample_peak = np.zeros(channels)
        self.true_peak_lin = np.zeros(channels)
        self.hop_true_peak = np.zeros(channels)
        tp = TruePeakState(channels)
        self.tp_coefs, self.tp_hist, self.tp_prev3, self.tp_work = tp.coefs, tp.hist, tp.prev3, tp.work
        self.tp_discard = np.zeros(channels)
        self.hop_log_enable(0)

    def process(self, x) -> None:
        """Meter x: (frames, channels) float32 or float64, any number of frames."""
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"x must be (frames, {self.channels}), got shape {x.shape}")
        if x.dtype != np.float64 and x.dtype != np.float32:
            raise TypeError(f"x must be float32 or float64, got {x.dtype}")
        _meter_flat(x, self.flat)

    def reset_integrated(self) -> None:
        """Start integrated, LRA, maxima and peaks afresh (momentary and short-term run on).
        Call it from the thread that calls ``process``, or between calls."""
        _reset_flat(self.flat)

    def hop_log_enable(self, max_hops: int, tp_floor_dbtp: float | None = None) -> None:
        """Record every hop from now on, up to max_hops of them (0 turns the log off); this
        replaces the log arrays of ``arrays``. With true peak on, the true peak is then
        computed hop by hop (for its per-hop maxima), which prunes less and runs slower.

        tp_floor_dbtp: a hop's true peak is then exact only where it exceeds
        min(floor, the channel's maximum so far), and reads that bound where it does not;
        the meter's maxima stay exact, and so does every hop's comparison with the floor
        (what counting overs needs), while quiet hops skip the interpolation as the meter
        without a log does (300 s of music: 0.13 s instead of 0.47). None: every hop exact."""
        self.log_hop = np.zeros(max_hops, dtype=np.int64)
        self.log_levels = np.zeros((max_hops, 2))
        self.log_true_peak = np.zeros((max_hops, self.channels))
        self.stats["logged"] = 0
        self.stats["tp_log_floor"] = 0.0 if tp_floor_dbtp is None else 10.0 ** (tp_floor_dbtp / 20.0)
        self.true_peak_lin[:] = np.maximum(self.true_peak_lin, self.hop_true_peak)
        self.hop_true_peak[:] = np.minimum(self.true_peak_lin, self.stats["tp_log_floor"])
        self.arrays = MeterArrays(*(getattr(self, name) for name in MeterArrays._fields))
        self.flat = tuple(self.arrays)  # for the quick call from Python (see _meter_flat)

    def hop_log(self) -> dict:
        """The logged hops: "time_s" (n,) end of each hop since the stream began;
        "momentary_lufs", "short_term_lufs" (n,) (windows not yet full count the time before
        the stream as silence); "true_peak_dbtp" (n, channels) the largest estimate emitted
        during the hop (estimates lag TP_DELAY frames), None without true peak;
        "dropped_hops": hops past the log's capacity."""
        n = min(int(self.stats["logged"]), self.log_hop.shape[0])
        with np.errstate(divide="ignore"):
            levels = LUFS_OFFSET + 10.0 * np.log10(self.log_levels[:n])
        return {
            "time_s": self.log_hop[:n] * (self.hop / self.sample_rate),
            "momentary_lufs": levels[:, 0],
            "short_term_lufs": levels[:, 1],
            "true_peak_dbtp": _amplitude_db(self.log_true_peak[:n]) if self.true_peak else None,
            "dropped_hops": int(self.stats["logged"]) - n,
        }

    @property
    def momentary_lufs(self) -> float:
        """Loudness of the last 400 ms (LUFS), updated every hop."""
        return energy_to_lufs(float(self.stats["m"]))

    @property
    def short_term_lufs(self) -> float:
        """Loudness of the last 3 s (LUFS), updated every hop."""
        return energy_to_lufs(float(self.stats["s"]))

    @property
    def momentary_max_lufs(self) -> float:
        return energy_to_lufs(float(self.stats["m_max"]))

    @property
    def short_term_max_lufs(self) -> float:
        return energy_to_lufs(float(self.stats["s_max"]))

    @property
    def integrated_lufs(self) -> float:
        return energy_to_lufs(float(integrated_energy(self.gate_count, self.gate_energy)))

    @property
    def loudness_range_lu(self) -> float:
        return float(loudness_range(self.lra_count, self.lra_energy))

    @property
    def sample_peak_dbfs(self) -> np.ndarray:
        return _amplitude_db(self.sample_peak)

    @property
    def true_peak_dbtp(self):
        """(channels,) dBTP, at least the sample peak; None when true_peak=False."""
        if not self.true_peak:
            return None
        peak = np.maximum(np.maximum(self.true_peak_lin, self.hop_true_peak), self.sample_peak)
        return _amplitude_db(peak)

    def readings(self) -> dict:
        """Every reading as plain Python floats (lists per channel; true peak None when off)."""
        tp = self.true_peak_dbtp
        return {
            "momentary_lufs": self.momentary_lufs,
            "short_term_lufs": self.short_term_lufs,
            "integrated_lufs": self.integrated_lufs,
            "loudness_range_lu": self.loudness_range_lu,
            "momentary_max_lufs": self.momentary_max_lufs,
            "short_term_max_lufs": self.short_term_max_lufs,
            "true_peak_dbtp": None if tp is None else [float(v) for v in tp],
            "sample_peak_dbfs": [float(v) for v in self.sample_peak_dbfs],
        }
