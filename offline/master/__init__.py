"""Mastering by reference: set the project's own chain so a track matches a reference track.

``master(x, reference, sample_rate)`` on arrays, ``master_file(in, out, reference)`` on files
(streamed, flat memory); both return a ``Mastered``. See docs/master.md.
"""

from .core import MATCH_ALL, BackRenderer, FrontRenderer, Mastered, Plan, fit_plan, master
from .files import master_file
from .measure import Measurement, Measurer, measure

__all__ = ["MATCH_ALL", "BackRenderer", "FrontRenderer", "Mastered", "Measurement", "Measurer", "Plan", "fit_plan",
           "master", "master_file", "measure"]
