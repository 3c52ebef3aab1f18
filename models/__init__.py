"""Learning: model definitions, data synthesis, training, export and the ONNX Runtime wrapper."""
