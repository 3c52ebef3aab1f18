"""The 64-float fingerprint and loudness normalisation of files (``auracore fingerprint``, ``auracore normalize``).

    from auracore.offline.fingerprint import fingerprint, FEATURE_NAMES
    fp = fingerprint(x, sample_rate)   # fp.values: float32 (64,), fp.to_dict(): {name: float}
"""

from .core import fingerprint, fingerprint_file
from .features import FEATURE_NAMES, FEATURES, REFERENCE_LUFS, VERSION, Fingerprint, FingerprintError

__all__ = ["fingerprint", "fingerprint_file", "Fingerprint", "FingerprintError", "FEATURE_NAMES", "FEATURES",
           "REFERENCE_LUFS", "VERSION"]
