"""Mastering by reference: set the project's own chain so a track matches a reference track.

``master(x, reference, sample_rate)`` on arrays, ``master_file(in, out, reference)`` on files
(streamed, flat memory); both return a ``Mastered``. See docs/master.md.
"""

from .core import MATCH_ALL, Mastered, Plan, Renderer, make_plan, master
from .files import master_file
from .measure import Measurement, Measurer, measure

__all__ = ["MATCH_ALL", "Mastered", "Measurement", "Measurer", "Plan", "Renderer", "make_plan", "master",
           "master_file", "measure"]
