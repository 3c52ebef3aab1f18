"""The ``auracore profile`` subcommand: the musical profile of one file, as a table, JSON or a PNG.

The mix is streamed block by block through ``ProfileAnalyzer`` (memory stays flat). With
``--stems DIR`` every audio file directly in DIR is one element (named by its file name
without the extension, at the mix's sample rate); with ``--separate`` the mix is split by
``auracore.offline.separate.separate`` (its shipped model, or the DSP fallback) and each
stem profiled. Exit codes as ``auracore.control.cli``: 0 done, 1 a file or option problem
(one line), 2 usage, 3 internal error, 130/143/129 interrupted (no partial PNG is left).
"""

import argparse
import json
import math
import os

from auracore.errors import AuraCoreError
from auracore.offline.audio_io import AUDIO_EXTENSIONS, AudioFileError, open_input, read_blocks

from .progress import progress_factory

PROG = "auracore profile"
BLOCK_FRAMES = 1 << 16


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``profile`` subcommand to an argparse subparsers object; sets func=run."""
    p = subparsers.add_parser(
        "profile", help="tempo, beats, metre, key, chords, sections, levels and per-element effects",
        description="The musical profile of one audio file: tempo with its confidence and curve, beats, "
                    "downbeats, time signature, key and mode with the runner-up, chords per beat, sections "
                    "with labels and their loudness, RMS, crest factor and width, the energy curve; per "
                    "element (with stems) the ADSR envelope, RT60, delay time, sidechain depth and rate, "
                    "and filter-cutoff movement. JSON writes null where a value is unknown.")
    p.add_argument("input", metavar="IN", help="audio file (WAV FLAC OGG AIFF MP3; 8-192 kHz; mono or stereo)")
    p.add_argument("--json", action="store_true", help="print the profile as one JSON object on stdout")
    p.add_argument("--plot", metavar="OUT.png", type=_png_path,
                   help="write a PNG: waveform with sections and beats, tempo curve, key and chords, "
                        "energy and width per section")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stems", metavar="DIR", help="a folder of stem files, one element each (same sample rate)")
    g.add_argument("--separate", action="store_true",
                   help="split the mix into drums, bass, vocals and other first, and profile each")
    p.add_argument("--separate-model", metavar="DIR|dsp", default=None,
                   help="with --separate: a separation model folder, or dsp for the DSP fallback "
                        "(default: the shipped model)")
    p.set_defaults(func=run)
    return p


def _png_path(text: str) -> str:
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"{text}: the plot is written as PNG; name it *.png")
    return text


def run(args: argparse.Namespace) -> int:
    """Profile args.input; print a table or JSON; write the plot; return the exit code."""
    from auracore.offline.profile import ProfileAnalyzer

    if args.separate_model and not args.separate:
        raise AuraCoreError("a separation model was given without asking for separation; add the separate option")
    if args.plot:
        from auracore.offline.audio_io import check_output_path

        check_output_path(args.plot, inputs=(args.input,))
    stem_files = _stem_files(args.stems) if args.stems else None
    bars = progress_factory()
    with open_input(args.input) as f:
        rate, channels, total = f.samplerate, f.channels, f.frames
        an = ProfileAnalyzer(rate, channels)
        keep = [] if args.separate else None
        bar = bars(total, "profile") if bars else None
        try:
            for block in read_blocks(f, BLOCK_FRAMES, args.input):
                an.process(block)
                if keep is not None:
                    keep.append(block)
                if bar:
                    bar.update(block.shape[0])
        finally:
            if bar:
                bar.close()
    stems = None
    if stem_files is not None:
        stems = _load_stems(stem_files, rate)
    elif args.separate:
        import numpy as np

        from auracore.offline.separate import separate

        x = np.concatenate(keep, axis=0)
        keep = None
        stems = separate(x, rate, model=args.separate_model)
    prof = an.finish(stems=stems)
    d = prof.to_dict()
    d["path"] = args.input
    if args.plot:
        from auracore.offline.profile.plot import plot_profile

        plot_profile(prof, args.plot, inputs=(args.input,) + tuple(stem_files or ()), title=os.path.basename(args.input))
        d["plot_png"] = args.plot
    if args.json:
        print(json.dumps(d, indent=1, allow_nan=False))
    else:
        print(format_table(d), flush=True)
    return 0


def _stem_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise AudioFileError(f"{folder}: not a folder; give the folder that holds the stem files")
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                   if n.lower().endswith(AUDIO_EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))
    if not files:
        raise AudioFileError(f"{folder}: no audio files in this folder (looked for " + ", ".join(AUDIO_EXTENSIONS) + ")")
    return files


def _load_stems(files: list[str], rate: int) -> dict:
    from auracore.offline.audio_io import load

    stems = {}
    for path in files:
        x, sr = load(path)
        if sr != rate:
            raise AudioFileError(f"{path}: sample rate {sr} Hz, the mix is at {rate} Hz; give stems at the mix's rate")
        stems[os.path.splitext(os.path.basename(path))[0]] = x
    return stems


def format_table(d: dict) -> str:
    """The profile as readable lines."""
    lines = [d["path"]]
    row = lambda k, v: lines.append(f"  {k:<18s} {v}")
    row("duration", f"{d['duration_s']:.2f} s")
    row("tempo", f"{_n(d['tempo_bpm'], 1)} BPM (confidence {_n(d['tempo_confidence'], 2)})")
    curve = [c["tempo_bpm"] for c in d["tempo_curve"] if c["tempo_bpm"] is not None]
    if curve:
        row("tempo range", f"{min(curve):.1f}..{max(curve):.1f} BPM")
    row("time signature", f"{d['time_signature'] or 'n/a'}  ({len(d['beats_s'])} beats, {len(d['downbeats_s'])} bars)")
    row("key", f"{d['key'] or 'n/a'} (confidence {_n(d['key_confidence'], 2)}; runner-up {d['key_runner_up'] or 'n/a'})")
    row("loudness", f"{_n(d['integrated_lufs'], 1)} LUFS integrated")
    chords = " ".join(c["label"] for c in d["chords"][:16])
    row("chords", chords + (" ..." if len(d["chords"]) > 16 else ""))
    lines.append("  sections:")
    for s in d["sections"]:
        lines.append(f"    {s['label']:<4s} {s['start_s']:8.2f} - {s['end_s']:8.2f} s  {_n(s['integrated_lufs'], 1):>6s} LUFS"
                     f"  RMS {_n(s['rms_dbfs'], 1):>6s} dBFS  crest {_n(s['crest_db'], 1):>5s} dB  width {_n(s['width'], 3)}")
    for name, e in d["elements"].items():
        a = e["adsr"]
        lines.append(f"  element {name}: attack {_n(a['attack_s'], 3)} s, decay {_n(a['decay_s'], 3)} s, "
                     f"sustain {_n(a['sustain_db'], 1)} dB, release {_n(a['release_s'], 3)} s ({a['notes']} notes); "
                     f"RT60 {_n(e['rt60_s'], 2)} s; delay {_n(e['delay_s'], 3)} s; sidechain {_n(e['sidechain_depth_db'], 1)} dB "
                     f"at {_n(e['sidechain_rate_hz'], 2)} Hz; filter movement {_n(e['filter_movement_octaves'], 2)} oct")
    if "plot_png" in d:
        lines.append(f"  plot: {d['plot_png']}")
    return "\n".join(lines) + "\n"


def _n(v, digits):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"
