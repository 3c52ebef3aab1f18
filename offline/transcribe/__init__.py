"""Transcription to MIDI: pitched notes (basic-pitch's ONNX model, decoded here) and drums, per stem.

``transcribe(x, sample_rate, stem_type="auto", ...) -> Notes``; ``Notes.to_midi()`` gives a
type-1 MIDI file with a tempo map, ``Notes.to_dict()`` what ``auracore transcribe --json``
prints. ``Transcriber`` streams (``process(block)`` / ``finish()``) for files of any length.
"""

from .notes import Note, Notes, TempoMap, Track, lowest_line
from .step import STEM_PROGRAMS, STEM_TYPES, Transcriber, tempo_map_for, transcribe, transcribe_stems

__all__ = ["Note", "Notes", "TempoMap", "Track", "Transcriber", "lowest_line", "transcribe", "transcribe_stems",
           "tempo_map_for", "STEM_TYPES", "STEM_PROGRAMS"]
