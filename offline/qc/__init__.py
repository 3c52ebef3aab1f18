"""The 12-dimension A/B quality score: ``qc(a, b, sample_rate) -> QCReport``. See docs/qc.md."""

from .core import DIMENSIONS, WEIGHTS, QCReport, qc

__all__ = ["DIMENSIONS", "WEIGHTS", "QCReport", "qc"]
