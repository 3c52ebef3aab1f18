"""The `auracore transcribe` subcommand: an audio file -> a type-1 MIDI file (and a JSON summary).

The file is streamed block by block (memory stays flat for any length) through
``auracore.offline.transcribe.Transcriber`` and, for the tempo map, the profile step's
streaming features and beat tracker (``auracore.offline.profile``); with ``--separate`` it is read whole, split into stems
by ``auracore.offline.separate.separate`` and each stem becomes a track. The MIDI file is
written atomically (nothing is left behind on an error or a signal) and never over the input.
"""

import argparse
import dataclasses
import json
import math
import os
import sys

from auracore.errors import AudioFileError, AuraCoreError

from .progress import progress_factory

PROG = "auracore transcribe"
BLOCK_FRAMES = 65536
MIDI_EXTENSIONS = (".mid", ".midi")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register `transcribe` on an argparse subparsers object; sets func=run."""
    p = sub.add_parser(
        "transcribe", help="transcribe an audio file to MIDI (pitched notes, bass, drums; per stem)",
        description="Transcribe IN (WAV FLAC OGG AIFF MP3; mono or stereo) to OUT, a type-1 MIDI file: "
                    "pitched material with basic-pitch's model (notes, velocities, pitch bends), drums as "
                    "GM drum notes on channel 10. The tempo map comes from the file's profile when the "
                    "profile step is installed, else 120 BPM; notes keep their real times either way. "
                    "A silent or empty input gives a valid MIDI file without notes and a warning.")
    p.add_argument("input", metavar="IN", help="input audio file")
    p.add_argument("output", metavar="OUT.mid", type=_midi_path, help="output MIDI file (.mid or .midi)")
    p.add_argument("--stem-type", choices=("auto", "pitched", "drums", "bass"), default="auto",
                   help="what IN holds (default auto: drums or pitched, decided from the audio)")
    p.add_argument("--separate", action="store_true",
                   help="split IN into stems (drums, bass, vocals, other) first; one track per stem")
    p.add_argument("--program", type=_program, default=None, metavar="N",
                   help="GM program 0-127 of the track (default 0 piano, 33 for bass; with --separate "
                        "a default per stem)")
    p.add_argument("--onset-threshold", type=_unit, default=0.7, metavar="X",
                   help="note-start activation 0-1 (default 0.7; lower finds more notes)")
    p.add_argument("--frame-threshold", type=_unit, default=0.3, metavar="X",
                   help="note-hold activation 0-1 (default 0.3; lower makes notes longer)")
    p.add_argument("--min-note-ms", type=_positive(10000.0), default=58.0, metavar="MS",
                   help="shortest note kept, ms (default 58)")
    p.add_argument("--min-hz", type=_positive(20000.0), default=None, metavar="HZ", help="lowest pitch kept, Hz")
    p.add_argument("--max-hz", type=_positive(20000.0), default=None, metavar="HZ", help="highest pitch kept, Hz")
    p.add_argument("--json", action="store_true", help="print the notes and a summary as JSON on stdout")
    p.set_defaults(func=run)
    return p


def _midi_path(text: str) -> str:
    if not text.lower().endswith(MIDI_EXTENSIONS):
        raise argparse.ArgumentTypeError(f"{text}: the output is a MIDI file; name it *.mid")
    return text


def _program(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a whole number") from None
    if not 0 <= value <= 127:
        raise argparse.ArgumentTypeError(f"{text}: a GM program lies in 0..127")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: not a finite number")
    return value


def _unit(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a threshold lies in 0..1")
    return value


def _positive(limit: float):
    def parse(text: str) -> float:
        value = _number(text)
        if not 0.0 < value <= limit:
            raise argparse.ArgumentTypeError(f"{text}: must lie in 0..{limit:g} (above 0)")
        return value
    return parse


def run(args: argparse.Namespace) -> int:
    """Transcribe args.input into args.output; print a summary or JSON; return the exit code."""
    from auracore.offline.audio_io import atomic_file, check_output_path

    check_output_path(args.output, (args.input,))
    options = dict(onset_threshold=args.onset_threshold, frame_threshold=args.frame_threshold,
                   min_note_ms=args.min_note_ms, min_hz=args.min_hz, max_hz=args.max_hz)
    if _is_empty_audio(args.input):
        notes = _empty(args, options)
    elif args.separate:
        notes = _run_separate(args, options)
    else:
        notes = _run_stream(args, options)
    with atomic_file(args.output, inputs=(args.input,)) as tmp:
        notes.to_midi().save(tmp)
    summary = notes.to_dict()
    summary.update(input=args.input, output=args.output)
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        _print_summary(summary)
    for w in notes.warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    return 0


def _is_empty_audio(path: str) -> bool:
    """True for a readable audio file that holds no frames (the one case open_input refuses
    that still makes a valid, empty transcription)."""
    from auracore.offline.audio_io import is_empty_audio

    return is_empty_audio(path)


def _empty(args, options):
    from auracore.offline.transcribe import Transcriber, tempo_map_for

    t = Transcriber(44100, args.stem_type if args.stem_type != "auto" else "pitched", args.program, **options)
    return t.finish(tempo_map_for())


def _run_stream(args, options):
    from auracore.offline.audio_io import open_input, read_blocks
    from auracore.offline.transcribe import Transcriber

    bars = progress_factory()
    with open_input(args.input) as f:
        t = Transcriber(f.samplerate, args.stem_type, args.program, **options)
        beats = _BeatTracker(f.samplerate, f.channels)
        total = f.frames
        bar = bars(total, "transcribe") if bars else None
        try:
            for block in read_blocks(f, BLOCK_FRAMES, args.input):
                t.process(block)
                beats.process(block)
                if bar:
                    bar.update(block.shape[0])
        finally:
            if bar:
                bar.close()
        if t.frames < total:
            raise AudioFileError(f"{args.input}: only part of the file could be read; it is truncated")
    notes = t.finish(beats.tempo_map())
    return dataclasses.replace(notes, warnings=notes.warnings + tuple(beats.warnings))


def _run_separate(args, options):
    from auracore.offline.audio_io import load
    from auracore.offline.separate import separate
    from auracore.offline.transcribe import transcribe_stems

    x, rate = load(args.input)
    beats = _BeatTracker(rate, x.shape[1])
    beats.process(x)
    stems = separate(x, rate)
    programs = {name: args.program for name in stems} if args.program is not None else None
    notes = transcribe_stems(stems, rate, programs=programs, tempo_map=beats.tempo_map(), **options)
    return dataclasses.replace(notes, warnings=notes.warnings + tuple(beats.warnings))


class _BeatTracker:
    """The profile step's tempo, beats and metre on the same blocks (streaming), as a tempo
    map; 120 BPM in 4/4 when the profile step is not installed or finds no beat."""

    def __init__(self, sample_rate: int, channels: int):
        self.warnings: list[str] = []
        try:
            from auracore.offline.profile.features import FeatureStream
        except ImportError:
            self.stream = None
            return
        self.stream = FeatureStream(sample_rate, channels, loudness=False)

    def process(self, block) -> None:
        if self.stream is not None:
            self.stream.process(block)

    def tempo_map(self):
        from auracore.offline.transcribe import tempo_map_for

        if self.stream is None:
            return tempo_map_for()
        from auracore.offline.profile.tempo import from_features

        try:
            tb = from_features(self.stream.finish())
        except AuraCoreError as exc:  # the profile could not follow this audio: the default grid
            self.warnings.append(f"no tempo map from the profile ({exc}); 120 BPM")
            return tempo_map_for()
        downbeats = tuple(getattr(tb, "downbeats_s", ()) or ())
        return tempo_map_for(tb.tempo_bpm, tb.beats_s, int(tb.beats_per_bar or 4),
                             downbeats[0] if downbeats else None)


def _print_summary(s: dict) -> None:
    print(f"{s['input']} -> {s['output']}")
    print(f"  duration  {s['duration_s']:.2f} s   tempo map {s['tempo']['tempo_bpm']:g} BPM, "
          f"{s['tempo']['beats_per_bar']}/4")
    for t in s["tracks"]:
        where = "channel 10" if t["channel"] else f"program {t['program']}"
        print(f"  track {t['name']:10s} {t['stem_type']:8s} {where:12s} {t['note_count']} notes")
