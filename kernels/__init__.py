"""The pure DSP core: Numba kernels over preallocated numpy state (no threads, no I/O)."""
