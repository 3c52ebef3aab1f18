"""Reconstruction: take a track apart, re-synthesise each stem through FluidSynth, mix, master by reference, score, iterate.

    from auracore.offline.reconstruct import reconstruct
    r = reconstruct(x, sample_rate, target_score=85, max_rounds=8)
    r.audio, r.stems, r.programs, r.notes.to_midi(), r.rounds
"""

from .core import Reconstruction, ReconstructError, Round, reconstruct
from .decide import Change, DecideError, LLMDecider, RuleDecider

__all__ = ["reconstruct", "Reconstruction", "ReconstructError", "Round", "RuleDecider", "LLMDecider", "Change",
           "DecideError"]
