"""AuraCore: a real-time AI mastering engine (kernels, realtime, models, offline, control)."""

__version__ = "0.1.0"
