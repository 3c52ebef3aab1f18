"""PNG figure of a profile: waveform with sections and beats, tempo curve, key and chords, energy and width.

Drawn on matplotlib's Agg canvas directly (no pyplot, no display), from the small series a
``Profile`` holds; written through ``atomic_file`` so a failure leaves nothing behind.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from auracore.offline.audio_io import atomic_file

from .step import Profile

FIGSIZE_IN = (13.0, 10.0)
DPI = 100
SECTION_COLOURS = ("#fce94f", "#8ae234", "#fcaf3e", "#729fcf", "#ad7fa8", "#e9b96e", "#ef2929", "#babdb6")
WAVE_COLOUR = "#3465a4"


def plot_profile(prof: Profile, out_path: str, inputs: tuple = (), title: str = "") -> None:
    """Write the figure (1300 x 1000 px) for prof as a PNG at out_path; inputs: paths it must not overwrite."""
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    wave, tempo_ax, chord_ax, level_ax = fig.subplots(4, 1, sharex=True, height_ratios=(1.4, 0.8, 0.6, 1.0))
    d = prof.to_dict()
    title = title.encode("utf-8", "backslashreplace").decode("utf-8")
    fig.suptitle(f"{title}\n{_f(d['tempo_bpm'], 1)} BPM ({d['time_signature'] or 'n/a'})   key {d['key'] or 'n/a'}"
                 f"   {_f(d['integrated_lufs'], 1)} LUFS   {len(d['sections'])} sections", fontsize=11)
    dur = max(prof.duration_s, 1e-3)
    label_colour = {}
    for s in prof.sections:
        base = s.label.rstrip("'")
        label_colour.setdefault(base, SECTION_COLOURS[len(label_colour) % len(SECTION_COLOURS)])
    # lane 1: waveform, sections, beats and downbeats
    pk = prof.waveform_peak
    t = (np.arange(pk.size) + 0.5) * prof.waveform_hop_s
    for s in prof.sections:
        wave.axvspan(s.start_s, s.end_s, color=label_colour[s.label.rstrip("'")], alpha=0.35, lw=0)
        wave.text(s.start_s + 0.005 * dur, 0.92, s.label, fontsize=11, fontweight="bold", va="top")
    wave.fill_between(t, -pk, pk, color=WAVE_COLOUR, lw=0)
    for b in prof.beats_s:
        wave.axvline(b, color="#555753", lw=0.3, alpha=0.5)
    for b in prof.downbeats_s:
        wave.axvline(b, color="#cc0000", lw=0.6, alpha=0.7)
    wave.set_ylim(-1.0, 1.0)
    wave.set_ylabel("sample peak")
    wave.set_title("waveform, sections (shaded), beats (grey) and downbeats (red)", fontsize=9, loc="left")
    # lane 2: tempo curve
    if prof.tempo.tempo_curve:
        ct, cb = zip(*prof.tempo.tempo_curve)
        tempo_ax.plot(ct, cb, color="#204a87")
        lo, hi = min(cb), max(cb)
        tempo_ax.set_ylim(lo - max(5.0, 0.1 * lo), hi + max(5.0, 0.1 * hi))
    tempo_ax.set_ylabel("BPM")
    tempo_ax.set_title("tempo curve", fontsize=9, loc="left")
    # lane 3: chords
    chord_ax.set_yticks([])
    chord_ax.set_ylim(0, 1)
    for i, (a, b, lab) in enumerate(prof.chords):
        chord_ax.axvspan(a, b, ymin=0.1, ymax=0.9, color="#d3d7cf" if i % 2 else "#eeeeec", lw=0)
        if b - a > 0.012 * dur:
            chord_ax.text(0.5 * (a + b), 0.5, lab.replace(":maj", "").replace(":min", "m").replace(":", ""),
                          ha="center", va="center", fontsize=7, clip_on=True)
    chord_ax.set_title(f"chords; key {d['key'] or 'n/a'} (confidence {_f(d['key_confidence'], 2)}, "
                       f"runner-up {d['key_runner_up'] or 'n/a'})", fontsize=9, loc="left")
    # lane 4: energy curve and per-section loudness and width
    if prof.structure.energy_curve:
        et, ev = zip(*prof.structure.energy_curve)
        ev = np.maximum(np.array(ev, dtype=float), -70.0)
        level_ax.plot(et, ev, color="#888a85", lw=0.8, label="momentary loudness")
    for s in prof.sections:
        if np.isfinite(s.integrated_lufs):
            level_ax.hlines(s.integrated_lufs, s.start_s, s.end_s, color="#f57900", lw=2.5)
    level_ax.set_ylabel("LUFS")
    level_ax.set_xlabel("time (s)")
    level_ax.set_xlim(0.0, dur)
    width_ax = level_ax.twinx()
    for s in prof.sections:
        if s.width is not None:
            width_ax.hlines(s.width, s.start_s, s.end_s, color="#4e9a06", lw=2.0, linestyles="dashed")
    width_ax.set_ylabel("width (side/mid)", color="#4e9a06")
    level_ax.set_title("energy (momentary loudness), integrated loudness per section (orange), "
                       "width per section (green, dashed)", fontsize=9, loc="left")
    with atomic_file(out_path, inputs=inputs) as tmp:
        fig.savefig(tmp, format="png")


def _f(v, digits):
    return "n/a" if v is None else f"{v:.{digits}f}"
