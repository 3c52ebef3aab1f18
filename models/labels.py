"""What the steering models speak of, without torch: content classes, predicted ids, reference loudness.

The run-time side (the demo's synthesis, the inference thread) reads these; torch, which
defines the networks (nets.py), is the `train` extra and must not be needed to run.
"""

CLASSES = ("speech", "acoustic", "band", "noise", "silence")
TARGET_IDS = tuple(f"eq.{b}.gain_db" for b in range(1, 9)) + (
    "comp.threshold_db", "comp.ratio", "width.amount", "output.gain_db")
REFERENCE_LUFS = -23.0  # clean material sits here; output.gain_db aims the input at it
