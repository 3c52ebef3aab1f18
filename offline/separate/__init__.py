"""Stem separation: ``separate(x, sample_rate, stems=...)`` (the step) and ``separate_file`` (the command's).

core.py: the separators, chunked overlap-add, resampling and add-back; dsp.py: the DSP
fallback; files.py: files in and out; evaluate.py: the metrics of the model card.
"""

from .core import (STEMS4, STEMS6, ChunkedSeparation, SeparationError, energy_shares, load_separator,
                   separate, separate_detail)
from .files import SeparateResult, separate_file

__all__ = ["STEMS4", "STEMS6", "ChunkedSeparation", "SeparateResult", "SeparationError", "energy_shares",
           "load_separator", "separate", "separate_detail", "separate_file"]
