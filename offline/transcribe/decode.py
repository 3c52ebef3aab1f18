"""Streaming note decoding: model frames (note and onset activations per pitch) -> note events.

A per-pitch state machine (Numba) that consumes frames block by block and emits each note as
soon as it ends, so memory does not grow with the file. A note starts on an onset peak (a
local maximum of the onset activation at or above ``onset_threshold``) or, with no onset, on
a run of note activation that stays at or above ``frame_threshold`` for ``min_frames`` frames
and peaks at or above ``sustain_threshold``; it lasts while the note activation holds at or
above ``frame_threshold``, and at or above ``release_ratio`` times its own peak activation (the model's activation
fades with the sound's release; the note was let go when it fell well below its peak),
allowing gaps of up to ``gap_frames`` frames, and ends early on a
new onset peak at its pitch (a repeated note). Notes shorter than ``min_frames`` are dropped.
At the end of the stream every note still sounding is closed at its last active frame, so
the last note of a file is kept.
"""

import numpy as np
from ...kernels.jit import njit

# one decoded note: pitch index, start frame, end frame (exclusive), activation sum over its
# frames, its frame count, its peak magnitude (the model's pitch-bend-free level)
NOTE_DTYPE = np.dtype([("pitch", "f8"), ("start", "f8"), ("end", "f8"), ("act_sum", "f8"), ("frames", "f8"),
                       ("peak", "f8")])
# one pitch's decoder state
STATE_DTYPE = np.dtype([
    ("active", "f8"),      # 1 while a note sounds
    ("start", "f8"),       # the sounding note's first frame
    ("last", "f8"),        # ... and its last frame at or above the thresholds
    ("below", "f8"),       # frames below them since (the gap so far)
    ("act_sum", "f8"),     # activation summed over the note's frames
    ("count", "f8"),       # ... and their count
    ("peak", "f8"),        # peak magnitude in the note's first ATTACK_FRAMES
    ("run", "f8"),         # with no onset: the first frame of the current run of activation (-1: none)
    ("run_peak", "f8"),    # ... its peak activation
    ("run_sum", "f8"),     # ... its activation sum
    ("prev_onset", "f8"),  # the previous frame's onset activation (the peak test)
    ("peak_act", "f8"),    # the note's peak activation (the release test)
])
ATTACK_FRAMES = 4  # frames after an onset in which the note's peak magnitude is taken


@njit(cache=True, nogil=True)
def _close(state, p, notes, n_notes, min_frames):
    start = state[p].start
    end = state[p].last + 1.0
    if end - start >= min_frames:
        note = notes[n_notes]
        note.pitch = p
        note.start = start
        note.end = end
        note.act_sum = state[p].act_sum
        note.frames = state[p].count
        note.peak = state[p].peak
        n_notes += 1
    state[p].active = 0.0
    return n_notes


@njit(cache=True, nogil=True)
def _start(state, p, t, a, mag):
    state[p].active = 1.0
    state[p].start = t
    state[p].last = t
    state[p].below = 0.0
    state[p].act_sum = a
    state[p].count = 1.0
    state[p].peak = mag
    state[p].peak_act = a


@njit(cache=True, nogil=True)
def decode_block(note_act, onset_act, mag, t0, state, onset_threshold, frame_threshold, sustain_threshold,
                 min_frames, gap_frames, release_ratio, lo, hi, final):
    """Decode frames of one block. note_act, onset_act, mag: (T + 1, P) float32, the last row
    being the next block's first frame (the onset peak test looks one frame ahead; with final
    it is a row of zeros past the end). t0: the global index of row 0. state: (P,) STATE_DTYPE
    records, carried between blocks. Pitches outside lo..hi-1 are ignored. Returns (notes, NOTE_DTYPE
    records, n)."""
    T = note_act.shape[0] - 1
    P = note_act.shape[1]
    notes = np.zeros(P * (T + 2), dtype=NOTE_DTYPE)
    n = 0
    for i in range(T):
        t = float(t0 + i)
        for p in range(lo, hi):
            a = note_act[i, p]
            c = onset_act[i, p]
            c_next = onset_act[i + 1, p]
            onset = c >= onset_threshold and c > state[p].prev_onset and c >= c_next
            state[p].prev_onset = c
            m = mag[i, p]
            if state[p].active > 0.0:
                if onset and t - state[p].start >= 2.0:
                    n = _close(state, p, notes, n, min_frames)
                    _start(state, p, t, a, m)
                    continue
                if t - state[p].start < ATTACK_FRAMES and m > state[p].peak:
                    state[p].peak = m
                if a > state[p].peak_act:
                    state[p].peak_act = a
                if a >= max(frame_threshold, release_ratio * state[p].peak_act):
                    state[p].last = t
                    state[p].below = 0.0
                    state[p].act_sum += a
                    state[p].count += 1.0
                else:
                    state[p].below += 1.0
                    if state[p].below > gap_frames:
                        n = _close(state, p, notes, n, min_frames)
                continue
            if onset:
                _start(state, p, t, a, m)
                state[p].run = -1.0
                continue
            # no onset: a sustained run of activation becomes a note from the run's start
            if a >= frame_threshold:
                if state[p].run < 0.0:
                    state[p].run = t
                    state[p].run_peak = 0.0
                    state[p].run_sum = 0.0
                state[p].run_peak = max(state[p].run_peak, a)
                state[p].run_sum += a
                length = t - state[p].run + 1.0
                neighbour = (p > 0 and state[p - 1].active > 0.0) or (p + 1 < P and state[p + 1].active > 0.0)
                if length >= min_frames and state[p].run_peak >= sustain_threshold and not neighbour:
                    state[p].active = 1.0
                    state[p].start = state[p].run
                    state[p].last = t
                    state[p].below = 0.0
                    state[p].act_sum = state[p].run_sum
                    state[p].count = length
                    state[p].peak = m
                    state[p].peak_act = state[p].run_peak
                    state[p].run = -1.0
            else:
                state[p].run = -1.0
    if final:
        for p in range(lo, hi):
            if state[p].active > 0.0:
                n = _close(state, p, notes, n, min_frames)
    return notes, n


def new_state(pitches: int) -> np.ndarray:
    """A fresh decoder state: (pitches,) STATE_DTYPE records."""
    state = np.zeros(pitches, dtype=STATE_DTYPE)
    state["run"] = -1.0
    return state
