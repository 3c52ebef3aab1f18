"""Progress bars for long work: tqdm on a terminal's stderr, nothing when piped."""

import sys


def progress_factory(stream=None):
    """A callable (total_frames, label) -> bar with update(n)/close(), or None when stream
    (default stderr) is not a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    from tqdm import tqdm

    def make(total, label):
        return tqdm(total=total, desc=label, unit="frames", unit_scale=True, file=stream, leave=False)

    return make
