"""The outside world's handle on the engine: parameters, presets and the command line."""
