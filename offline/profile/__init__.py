"""The musical profile: tempo, beats, metre, key, chords, sections, levels and per-element effects.

step.py: ``profile`` and the ``Profile`` dataclass; features.py: streaming feature
extraction; tempo.py: tempo, beats, metre; harmony.py: key and chords; structure.py:
sections, levels, energy curve; elements.py: ADSR, RT60, delay, sidechain, filter cutoff
of one stem; plot.py: the figure.
"""

from .elements import ElementProfile, element_profile, rt60
from .harmony import KeyChords, key_and_chords
from .step import Profile, ProfileAnalyzer, ProfileError, check_audio, profile
from .structure import Section, Structure, sections
from .tempo import TempoBeats, tempo_and_beats

__all__ = ["ElementProfile", "KeyChords", "Profile", "ProfileAnalyzer", "ProfileError", "Section", "Structure",
           "TempoBeats", "check_audio", "element_profile", "key_and_chords", "profile", "rt60", "sections",
           "tempo_and_beats"]
