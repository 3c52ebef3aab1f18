"""The reconstruction's files: the rebuild, its stems, the MIDI, report.json and report.html (opens offline)."""

import base64
import html
import io
import json
import os

import numpy as np

from auracore.offline.audio_io import atomic_file, save

from .core import Reconstruction

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")


def _svg_rounds(rounds) -> str:
    """The 12 dimensions per round as an inline SVG line chart (0-100 against the round)."""
    w, h, pad = 640, 300, 40
    names = list(rounds[0].dimensions)
    n = len(rounds)
    xs = [pad + (w - 2 * pad) * (i / max(n - 1, 1)) for i in range(n)]

    def y(v):
        return h - pad - (h - 2 * pad) * (v / 100.0)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 200}" height="{h}" role="img" '
             f'aria-label="QC dimensions per round">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>']
    for v in (0, 50, 100):
        parts.append(f'<text x="{pad - 6}" y="{y(v) + 4}" font-size="11" text-anchor="end">{v}</text>')
    for i, x in enumerate(xs):
        parts.append(f'<text x="{x}" y="{h - pad + 16}" font-size="11" text-anchor="middle">round {i + 1}</text>')
    for k, name in enumerate(names):
        pts = [(x, r.dimensions[name]) for x, r in zip(xs, rounds) if r.dimensions.get(name) is not None]
        if not pts:
            continue
        c = COLOURS[k % len(COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y(v):.1f}" for x, v in pts) + '"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3" fill="{c}"/>' for x, v in pts]
        parts.append(f'<text x="{w - pad + 12}" y="{pad + 14 * k}" font-size="11" fill="{c}">{html.escape(name)}</text>')
    scores = [(x, r.qc_score) for x, r in zip(xs, rounds)]
    parts.append('<polyline fill="none" stroke="#000" stroke-width="3" stroke-dasharray="6 3" points="'
                 + " ".join(f"{x:.1f},{y(v):.1f}" for x, v in scores) + '"/>')
    parts.append(f'<text x="{w - pad + 12}" y="{pad + 14 * len(names)}" font-size="11">score (dashed)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _spectrograms_png(a: np.ndarray, b: np.ndarray, sample_rate: int) -> str:
    """Side-by-side mel spectrograms (dB) of the input and the rebuild, as a data: URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auracore.offline.qc.dimensions import mel_db

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for ax, x, title in ((axes[0], a, "input (A)"), (axes[1], b, "reconstruction (B)")):
        m = mel_db(x, sample_rate)
        ax.imshow(m.T, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, x.shape[0] / sample_rate, 0, m.shape[1]))
        ax.set_title(title)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("mel band")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_outputs(result: Reconstruction, x: np.ndarray, in_path: str, outdir: str, subtype: str | None = None) -> dict:
    """Write everything into outdir (each file atomically); returns what ``--json`` prints."""
    out = os.path.join(outdir, "reconstruction.wav")
    save(out, result.audio, result.sample_rate, subtype=subtype, inputs=(in_path,))
    os.makedirs(os.path.join(outdir, "stems"), exist_ok=True)
    stems = {}
    for name, y in result.stems.items():
        p = os.path.join(outdir, "stems", f"{name}.wav")
        save(p, y, result.sample_rate, subtype=subtype, inputs=(in_path,))
        stems[name] = p
    midi = os.path.join(outdir, "reconstruction.mid")
    with atomic_file(midi, inputs=(in_path,), suffix=".mid") as tmp:
        result.notes.to_midi().save(tmp)
    report_json = os.path.join(outdir, "report.json")
    report_html = os.path.join(outdir, "report.html")
    summary = {"output": out, "stems": stems, "midi": midi, "programs": dict(result.programs),
               "rounds": [{"qc_score": r.qc_score, "dimensions": r.dimensions, "changed": r.changed}
                          for r in result.rounds], "report": report_html}
    with atomic_file(report_json, inputs=(in_path,), suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({**summary, "input": in_path, **result.to_dict()}, f, indent=2, default=_plain)
    rel_a = os.path.relpath(os.path.abspath(in_path), os.path.abspath(outdir))
    rows = "".join(f"<tr><td>{r.index}</td><td>{r.qc_score:.1f}</td><td>{html.escape(', '.join(r.weakest))}</td>"
                   f"<td>{html.escape('; '.join(c['kind'] + (' ' + c['stem'] if c['stem'] else '') for c in r.changed) or '-')}"
                   f"{f' (on round {r.from_round})' if 0 < r.from_round < r.index - 1 else ''}</td>"
                   f"<td>{html.escape(', '.join(r.rendered) or '-')}</td></tr>" for r in result.rounds)
    progs = "".join(f"<tr><td>{html.escape(n)}</td><td>{p}</td><td>{html.escape(result.choices.get(n, {}).get('family', ''))}</td></tr>"
                    for n, p in result.programs.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AuraCore reconstruction</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} .ab{{display:flex;gap:2em}}</style></head><body>
<h1>Reconstruction of {html.escape(os.path.basename(in_path))}</h1>
<p>Best round {result.best_round}: QC score <b>{result.qc_score:.1f}</b> of 100 (decider: {html.escape(result.decider)};
{result.renders} stem renders).</p>
<div class="ab"><div><h2>A: the input</h2><audio controls src="{html.escape(rel_a)}"></audio></div>
<div><h2>B: the reconstruction</h2><audio controls src="reconstruction.wav"></audio></div></div>
<h2>The 12 dimensions per round</h2>{_svg_rounds(result.rounds)}
<table><tr><th>round</th><th>score</th><th>weakest</th><th>changed before it</th><th>rendered</th></tr>{rows}</table>
<h2>Programs</h2><table><tr><th>stem</th><th>GM program</th><th>family</th></tr>{progs}</table>
<h2>Spectrograms</h2><img alt="mel spectrograms of A and B" src="{_spectrograms_png(x, result.audio, result.sample_rate)}">
</body></html>
"""
    with atomic_file(report_html, inputs=(in_path,), suffix=".html") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
    return summary


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
