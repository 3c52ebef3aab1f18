"""PNG figure of one analysed file: waveform envelope with true-peak overs, loudness over time, spectrum.

Drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global state), from
the small series ``auracore.offline.analyze`` collects while streaming.
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from auracore.offline.analyze import OCTAVE_CENTRES_HZ, OCTAVE_LABELS, TP_OVER_DBTP, FileAnalysis
from auracore.offline.audio_io import atomic_file

FIGSIZE_IN = (12.0, 9.0)
DPI = 100
LANE_NAMES = {1: ("M",), 2: ("L", "R"), 6: ("L", "R", "C", "LFE", "Ls", "Rs")}
WAVE_COLOUR = "#3465a4"
MOMENTARY_COLOUR = "#9bbbe0"
SHORT_TERM_COLOUR = "#204a87"
OVER_COLOUR = "#cc0000"
INTEGRATED_COLOUR = "#f57900"
LOUDNESS_FLOOR_LUFS = -60.0


def plot_analysis(result: FileAnalysis, out_path: str) -> None:
    """Write the figure for one file as a PNG (1200 x 900 px) at out_path."""
    m, p = result.metrics, result.plot
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    wave_ax, loud_ax, spec_ax = fig.subplots(3, 1, height_ratios=(1.2, 1.0, 1.0))
    title = os.path.basename(m["path"]) or m["path"]
    # a name that is not UTF-8 holds surrogate escapes, which the text renderer refuses
    title = title.encode("utf-8", "backslashreplace").decode("utf-8")
    fig.suptitle(
        f"{title}\n"
        f"{_fmt(m['integrated_lufs'])} LUFS integrated   LRA {_fmt(m['loudness_range_lu'])} LU   "
        f"true peak {_fmt(m['true_peak_dbtp'])} dBTP   PLR {_fmt(m['plr_db'])} dB   "
        f"quality {m['quality_score']:.1f}/100", fontsize=11)
    # an over is marked at the middle of the 100 ms step that holds it
    over_times_s = p.step_times_s[p.step_true_peak_dbtp >= TP_OVER_DBTP] - 0.05
    _draw_waveform(wave_ax, p, over_times_s)
    _draw_loudness(loud_ax, p, m, over_times_s)
    _draw_spectrum(spec_ax, p)
    for ax in (wave_ax, loud_ax):
        ax.set_xlim(0.0, m["duration_s"])
        ax.set_xlabel("time (s)")
    with atomic_file(out_path) as tmp:
        fig.savefig(tmp, format="png")


def _draw_waveform(ax, p, over_times_s: np.ndarray) -> None:
    """One lane per channel (min/max envelope), true-peak overs as marks above the lanes."""
    columns, channels = p.envelope_lo.shape
    starts_s = np.arange(columns) * p.column_frames / p.sample_rate
    names = LANE_NAMES.get(channels, tuple(str(c + 1) for c in range(channels)))
    for c in range(channels):
        centre = -2.2 * c  # lanes span +-1 (full scale) with a small gap
        if p.column_frames == 1:  # a short file: one sample per column, min = max
            ax.plot(starts_s, centre + p.envelope_hi[:, c], color=WAVE_COLOUR, linewidth=0.8)
        else:
            ax.fill_between(starts_s, centre + p.envelope_lo[:, c], centre + p.envelope_hi[:, c],
                            step="post", color=WAVE_COLOUR, linewidth=0.0)
        ax.axhline(centre, color=WAVE_COLOUR, linewidth=0.5)  # silence still shows a line
        for level in (-1.0, 1.0):
            ax.axhline(centre + level, color="0.7", linewidth=0.5)
    if over_times_s.size:
        ax.plot(over_times_s, np.full(over_times_s.size, 1.12), "v", color=OVER_COLOUR,
                markersize=4)
    ax.set_yticks([-2.2 * c for c in range(channels)], names)
    ax.set_ylim(-2.2 * (channels - 1) - 1.2, 1.25)
    ax.set_title("waveform (min/max per column)"
                 + (f", red: true peak >= {TP_OVER_DBTP:g} dBTP" if over_times_s.size else ""),
                 fontsize=10, loc="left")


def _draw_loudness(ax, p, m, over_times_s: np.ndarray) -> None:
    ax.plot(p.step_times_s, p.momentary_lufs, color=MOMENTARY_COLOUR, linewidth=0.8,
            label="momentary (400 ms)")
    ax.plot(p.step_times_s, p.short_term_lufs, color=SHORT_TERM_COLOUR, linewidth=1.5,
            label="short-term (3 s)")
    integrated = m["integrated_lufs"]
    if np.isfinite(integrated):
        # beneath the curves: steady material sits right on it
        ax.axhline(integrated, color=INTEGRATED_COLOUR, linestyle="--", linewidth=1.2,
                   label=f"integrated {integrated:.1f} LUFS", zorder=1)
    ax.axhline(m["target_lufs"], color="0.5", linestyle=":", linewidth=1.0,
               label=f"target {m['target_lufs']:g} LUFS")
    finite = np.concatenate([v[np.isfinite(v)] for v in (p.momentary_lufs, p.short_term_lufs)])
    top = max(float(finite.max()) if finite.size else m["target_lufs"], m["target_lufs"]) + 3.0
    bottom = max(LOUDNESS_FLOOR_LUFS, (float(finite.min()) if finite.size else top - 30.0) - 3.0)
    bottom = min(bottom, top - 12.0)
    if over_times_s.size:
        ax.vlines(over_times_s, top - 1.5, top, color=OVER_COLOUR, linewidth=1.0,
                  label="true-peak overs")
    ax.set_ylim(bottom, top)
    ax.set_ylabel("LUFS")
    ax.set_title("loudness", fontsize=10, loc="left")
    ax.grid(True, color="0.9")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncol=5, frameon=False)


def _draw_spectrum(ax, p) -> None:
    freqs_hz, level_db = p.spectrum_freqs_hz[1:], p.spectrum_db[1:]  # DC has no place on a log axis
    finite = level_db[np.isfinite(level_db)]
    top = float(finite.max()) + 5.0 if finite.size else 0.0
    ax.semilogx(freqs_hz, np.maximum(level_db, top - 120.0), color=WAVE_COLOUR, linewidth=0.9)
    ax.set_xlim(20.0, p.sample_rate / 2.0)
    ax.set_ylim(top - 100.0, top)
    ticks = [(f, label) for f, label in zip(OCTAVE_CENTRES_HZ, OCTAVE_LABELS) if f < p.sample_rate / 2]
    ax.set_xticks([f for f, _ in ticks], [_hz_label(label) for _, label in ticks])
    ax.minorticks_off()
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("dBFS (sine peak)")
    ax.set_title("average spectrum", fontsize=10, loc="left")
    ax.grid(True, color="0.9")


def _hz_label(label: str) -> str:
    hz = float(label)
    return f"{hz / 1000:g}k" if hz >= 1000 else label


def _fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.1f}"
