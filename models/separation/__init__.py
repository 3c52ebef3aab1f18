"""Stem separation model: data rendered here, the torch net, training, ONNX export (see MODEL_CARD.md)."""
