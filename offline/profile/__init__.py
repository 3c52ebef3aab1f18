"""The musical profile: tempo, beats, metre, key, chords, sections, levels and per-element effects.

features.py: streaming feature extraction; tempo.py: tempo, beats, metre.
"""

from .tempo import TempoBeats, tempo_and_beats

__all__ = ["TempoBeats", "tempo_and_beats"]
