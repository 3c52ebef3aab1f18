"""When the transcriber hears an instrument's notes: the onset lag of a chosen program, read by synthesis.

The transcriber places a note's onset where its model's onset activation peaks, and how
long after the note-on that is depends on the instrument's attack: on the bench's pieces the
lead's notes were read 11 ms late and the bass line's 14 ms early (median), where the drums'
were within 3 ms. Rendered at the times read, a part then plays that much late or early
against the drums. ``onset_lag`` takes a render of the part's own notes over an excerpt, with
the program chosen for it (``core._read_lag`` makes it), transcribes it as the part was
transcribed, and returns the median signed error of the onsets read against the onsets
played: the chosen program's lag, which stands for the original's. ``shifted`` moves the
notes back by it.
"""

import numpy as np

MATCH_S = 0.08     # an onset read within this of a played one is its reading
MIN_MATCHES = 4    # fewer matched onsets: no lag is claimed
MAX_LAG_S = 0.04   # a lag read larger than this is held to it


def onset_lag(played: tuple, render: np.ndarray, sample_rate: int, read) -> float:
    """The median signed onset error (s, positive: read late) of read(render, sample_rate) ->
    onset times, against the onsets played (notes as (start_s, duration_s, pitch, velocity),
    times within the render); 0 with fewer than MIN_MATCHES matches, within +-MAX_LAG_S."""
    starts = np.array(sorted({round(n[0], 4) for n in played}), dtype=np.float64)
    found = np.sort(np.asarray(read(render, sample_rate), dtype=np.float64))
    if starts.size == 0 or found.size == 0:
        return 0.0
    err = found[np.abs(found[None, :] - starts[:, None]).argmin(axis=1)] - starts
    err = err[np.abs(err) <= MATCH_S]
    if err.size < MIN_MATCHES:
        return 0.0
    return float(np.clip(np.median(err), -MAX_LAG_S, MAX_LAG_S))


def shifted(notes: tuple, lag_s: float) -> tuple:
    """notes ((start_s, duration_s, pitch, velocity), ...) played lag_s earlier (none before 0)."""
    if lag_s == 0.0:
        return notes
    return tuple((max(0.0, s - lag_s), d, p, v) for s, d, p, v in notes)
