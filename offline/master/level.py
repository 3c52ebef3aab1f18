"""The output gain and the width of a master, solved on the chain's front half's output.

The chain splits (``kernels.chain``, PART_FRONT / PART_BACK): the front (input gain, EQ,
compressor) does not depend on the output gain or the width, which act after it. So the
front runs once over the whole input and its output u is kept (``FrontStats`` measures it as
it passes). Before the limiter the output is g * (M + w S, M - w S) of u's mid M and side S,
so its integrated loudness (BS.1770 gating on 400 ms blocks every 100 ms) and its side/mid
energy ratio follow exactly, for any g and w, from u's per-block K-weighted mid and side
energies and its plain mid and side energies. What the limiter then takes off is measured on
an excerpt of u run through the back half (``back_excerpt``; the search is ``core.level``);
the written output's own meter checks the result, and one more back pass corrects what is
left.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from auracore.kernels import params as P
from auracore.kernels.chain import PART_BACK, ChainState, process
from auracore.kernels.loudness import (ABS_GATE_ENERGY, REL_GATE_FACTOR, LoudnessMeter, energy_to_lufs, hop_frames,
                                      integrated_energy)

from .measure import add_row_energies, mid_side

SETTLE_S = 0.5          # each excerpt chunk is measured after this much (the limiter's release settles)
EXCERPT_CHUNKS = 16
EXCERPT_CHUNK_S = 3.0
EXCERPT_ROUNDS = 4           # the limiter measured on the excerpt this many times at most: ...
EXCERPT_TOLERANCE_DB = 0.25  # ... once when it takes less than this (LU), else until within a tenth of it


def integrated_lufs(blocks: np.ndarray) -> float:
    """BS.1770 integrated loudness of gating-block energies (channel-weighted K-weighted mean
    squares), with the meter's gates (``kernels.loudness``) applied to the exact values."""
    kept = blocks[blocks >= ABS_GATE_ENERGY]
    if kept.size == 0:
        return -math.inf
    kept = kept[kept >= np.mean(kept) * REL_GATE_FACTOR]
    return energy_to_lufs(float(np.mean(kept)))


def excerpt_starts(frames: int, sample_rate: int) -> list[tuple[int, int]]:
    """(start, stop) frame ranges of the excerpt: the whole signal when it is short, else
    EXCERPT_CHUNKS chunks of EXCERPT_CHUNK_S spread evenly from start to end."""
    chunk = int(round(EXCERPT_CHUNK_S * sample_rate))
    if frames <= EXCERPT_CHUNKS * chunk:
        return [(0, frames)]
    span = frames - chunk
    return [(int(round(i * span / (EXCERPT_CHUNKS - 1))), int(round(i * span / (EXCERPT_CHUNKS - 1))) + chunk)
            for i in range(EXCERPT_CHUNKS)]


@dataclass(frozen=True)
class FrontOutput:
    """What the back half's level and width need from the front's output u: the gating
    blocks' K-weighted mean squares of M and S (a mono u: M only), the plain sums of M**2 and
    S**2, and an excerpt of u (float32 chunks, ``excerpt_starts``)."""

    sample_rate: int
    channels: int
    mid_blocks: np.ndarray
    side_blocks: np.ndarray | None
    mid_energy: float
    side_energy: float
    excerpt: tuple

    def loudness(self, gain_db: float, width: float) -> float:
        """Integrated loudness (LUFS) of g * (M + w S, M - w S) (mono: g * u), g in dB."""
        g2 = 10.0 ** (gain_db / 10.0)
        if self.side_blocks is None:
            return integrated_lufs(g2 * self.mid_blocks)
        return integrated_lufs(2.0 * g2 * (self.mid_blocks + width * width * self.side_blocks))

    def side_mid_ratio(self, width: float) -> float | None:
        """Side over mid energy of the output before the limiter (None for mono or no mid)."""
        if self.side_blocks is None or self.mid_energy <= 0.0:
            return None
        return width * width * self.side_energy / self.mid_energy


class FrontStats:
    """Measures the front's output as it streams: process(u block) for each block of u in
    order (rows past the first `frames`, the lookahead's tail the output does not keep, are
    ignored), then finish()."""

    def __init__(self, sample_rate: int, channels: int, frames: int):
        self.sample_rate = int(sample_rate)
        self.channels = channels
        hop, step = hop_frames(sample_rate)
        self.step_hops = step // hop
        self.meters = [LoudnessMeter(sample_rate, 1, true_peak=False) for _ in range(channels)]
        for m in self.meters:
            m.hop_log_enable(frames // hop + 2)
        self.energy = np.zeros(2)
        self.ranges = excerpt_starts(frames, self.sample_rate)
        self.chunks = [np.zeros((b - a, channels), dtype=np.float32) for a, b in self.ranges]
        self.total = frames
        self.frames = 0

    def process(self, u: np.ndarray) -> None:
        """u: (rows, channels) float64, the front's output in order."""
        u = u[:max(self.total - self.frames, 0)]
        n = u.shape[0]
        if n == 0:
            return
        start = self.frames
        for (a, b), chunk in zip(self.ranges, self.chunks):
            lo, hi = max(a, start), min(b, start + n)
            if lo < hi:
                chunk[lo - a:hi - a] = u[lo - start:hi - start]
        self.frames += n
        if self.channels == 2:
            ms = np.empty((2, n))
            mid_side(u, ms)
            self.meters[0].process(ms[0][:, None])
            self.meters[1].process(ms[1][:, None])
            add_row_energies(ms, self.energy)
        else:
            self.meters[0].process(u)
            add_row_energies(u.reshape(1, -1), self.energy)

    def _blocks(self, meter: LoudnessMeter) -> np.ndarray:
        # the meter's gating blocks: the momentary value at every 100 ms step once 400 ms are in
        n = min(int(meter.stats["logged"]), meter.log_hop.shape[0])
        hops = meter.log_hop[:n]
        keep = (hops >= 4 * self.step_hops) & (hops % self.step_hops == 0)
        return meter.log_levels[:n, 0][keep].copy()

    def finish(self) -> FrontOutput:
        side = self._blocks(self.meters[1]) if self.channels == 2 else None
        return FrontOutput(self.sample_rate, self.channels, self._blocks(self.meters[0]), side,
                           float(self.energy[0]), float(self.energy[1]), tuple(self.chunks))


def back_excerpt(front: FrontOutput, vector: np.ndarray, scale_db: float = 0.0) -> tuple[float, float, float | None, float | None]:
    """(loudness before, after the limiter in LUFS, side/mid ratio before, after) of the
    excerpt of u, scaled by scale_db, through the back half with the parameter vector, each
    chunk on a fresh chain and measured after SETTLE_S (a single chunk, the whole signal:
    from its start). Each chunk is run and metered on a thread of the pool by itself; the
    loudness is that of all the chunks' gating blocks together (the meters' histograms
    summed), so no block straddles two chunks."""
    sr, ch = front.sample_rate, front.channels
    settle = int(SETTLE_S * sr) if len(front.excerpt) > 1 else 0
    scale = 10.0 ** (scale_db / 20.0)
    gain = scale * 10.0 ** (vector[P.INDEX["output.gain_db"]] / 20.0)
    width = vector[P.INDEX["width.amount"]]

    def run(chunk):
        st = ChainState(sr, ch, params=vector)
        y = np.concatenate([chunk.astype(np.float64) * scale, np.zeros((st.latency, ch))])
        process(y, st, vector, PART_BACK)
        y = y[st.latency:][settle:]
        x = chunk[settle:].astype(np.float64)
        sums = np.zeros(4)   # mid, side energies before and after
        if ch == 2:
            mid, side = 0.5 * gain * (x[:, 0] + x[:, 1]), 0.5 * gain * width * (x[:, 0] - x[:, 1])
            pre = np.stack([mid + side, mid - side], axis=1)
            sums[:] = (float(np.sum(mid * mid)), float(np.sum(side * side)),
                       0.25 * float(np.sum((y[:, 0] + y[:, 1]) ** 2)), 0.25 * float(np.sum((y[:, 0] - y[:, 1]) ** 2)))
        else:
            pre = gain * x
        meters = []
        for signal in (pre, y):
            m = LoudnessMeter(sr, ch, true_peak=False)
            m.process(signal)
            meters.append(m)
        return meters, sums

    counts = [None, None]
    energies = [None, None]
    sums = np.zeros(4)
    with ThreadPoolExecutor(2, thread_name_prefix="auracore-excerpt") as pool:
        for meters, part in pool.map(run, front.excerpt):
            sums += part
            for k, m in enumerate(meters):
                counts[k] = m.gate_count.copy() if counts[k] is None else counts[k] + m.gate_count
                energies[k] = m.gate_energy.copy() if energies[k] is None else energies[k] + m.gate_energy
    pre_lufs, post_lufs = (energy_to_lufs(float(integrated_energy(counts[k], energies[k]))) for k in (0, 1))
    ratios = (None, None)
    if ch == 2 and sums[0] > 0.0 and sums[2] > 0.0:
        ratios = (sums[1] / sums[0], sums[3] / sums[2])
    return pre_lufs, post_lufs, ratios[0], ratios[1]
