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
from numba import njit

# note rows: pitch index, start frame, end frame (exclusive), activation sum, frames, peak magnitude
NOTE_FIELDS = 6
# per-pitch state columns
S_ACTIVE, S_START, S_LAST, S_BELOW, S_SUM, S_COUNT, S_PEAK, S_RUN, S_RUNPEAK, S_RUNSUM, S_PREV_C, S_PEAK_A = range(12)
STATE_FIELDS = 12
ATTACK_FRAMES = 4  # frames after an onset in which the note's peak magnitude is taken


@njit(cache=True, nogil=True)
def _close(state, p, notes, n_notes, min_frames):
    start = state[p, S_START]
    end = state[p, S_LAST] + 1.0
    if end - start >= min_frames:
        notes[n_notes, 0] = p
        notes[n_notes, 1] = start
        notes[n_notes, 2] = end
        notes[n_notes, 3] = state[p, S_SUM]
        notes[n_notes, 4] = state[p, S_COUNT]
        notes[n_notes, 5] = state[p, S_PEAK]
        n_notes += 1
    state[p, S_ACTIVE] = 0.0
    return n_notes


@njit(cache=True, nogil=True)
def _start(state, p, t, a, mag):
    state[p, S_ACTIVE] = 1.0
    state[p, S_START] = t
    state[p, S_LAST] = t
    state[p, S_BELOW] = 0.0
    state[p, S_SUM] = a
    state[p, S_COUNT] = 1.0
    state[p, S_PEAK] = mag
    state[p, S_PEAK_A] = a


@njit(cache=True, nogil=True)
def decode_block(note_act, onset_act, mag, t0, state, onset_threshold, frame_threshold, sustain_threshold,
                 min_frames, gap_frames, release_ratio, lo, hi, final):
    """Decode frames of one block. note_act, onset_act, mag: (T + 1, P) float32, the last row
    being the next block's first frame (the onset peak test looks one frame ahead; with final
    it is a row of zeros past the end). t0: the global index of row 0. state: (P, STATE_FIELDS)
    float64, carried between blocks. Pitches outside lo..hi-1 are ignored. Returns (notes
    (n, NOTE_FIELDS) float64, n)."""
    T = note_act.shape[0] - 1
    P = note_act.shape[1]
    notes = np.zeros((P * (T + 2), NOTE_FIELDS))
    n = 0
    for i in range(T):
        t = float(t0 + i)
        for p in range(lo, hi):
            a = note_act[i, p]
            c = onset_act[i, p]
            c_next = onset_act[i + 1, p]
            onset = c >= onset_threshold and c > state[p, S_PREV_C] and c >= c_next
            state[p, S_PREV_C] = c
            m = mag[i, p]
            if state[p, S_ACTIVE] > 0.0:
                if onset and t - state[p, S_START] >= 2.0:
                    n = _close(state, p, notes, n, min_frames)
                    _start(state, p, t, a, m)
                    continue
                if t - state[p, S_START] < ATTACK_FRAMES and m > state[p, S_PEAK]:
                    state[p, S_PEAK] = m
                if a > state[p, S_PEAK_A]:
                    state[p, S_PEAK_A] = a
                if a >= max(frame_threshold, release_ratio * state[p, S_PEAK_A]):
                    state[p, S_LAST] = t
                    state[p, S_BELOW] = 0.0
                    state[p, S_SUM] += a
                    state[p, S_COUNT] += 1.0
                else:
                    state[p, S_BELOW] += 1.0
                    if state[p, S_BELOW] > gap_frames:
                        n = _close(state, p, notes, n, min_frames)
                continue
            if onset:
                _start(state, p, t, a, m)
                state[p, S_RUN] = -1.0
                continue
            # no onset: a sustained run of activation becomes a note from the run's start
            if a >= frame_threshold:
                if state[p, S_RUN] < 0.0:
                    state[p, S_RUN] = t
                    state[p, S_RUNPEAK] = 0.0
                    state[p, S_RUNSUM] = 0.0
                state[p, S_RUNPEAK] = max(state[p, S_RUNPEAK], a)
                state[p, S_RUNSUM] += a
                length = t - state[p, S_RUN] + 1.0
                neighbour = (p > 0 and state[p - 1, S_ACTIVE] > 0.0) or (p + 1 < P and state[p + 1, S_ACTIVE] > 0.0)
                if length >= min_frames and state[p, S_RUNPEAK] >= sustain_threshold and not neighbour:
                    state[p, S_ACTIVE] = 1.0
                    state[p, S_START] = state[p, S_RUN]
                    state[p, S_LAST] = t
                    state[p, S_BELOW] = 0.0
                    state[p, S_SUM] = state[p, S_RUNSUM]
                    state[p, S_COUNT] = length
                    state[p, S_PEAK] = m
                    state[p, S_PEAK_A] = state[p, S_RUNPEAK]
                    state[p, S_RUN] = -1.0
            else:
                state[p, S_RUN] = -1.0
    if final:
        for p in range(lo, hi):
            if state[p, S_ACTIVE] > 0.0:
                n = _close(state, p, notes, n, min_frames)
    return notes, n


def new_state(pitches: int) -> np.ndarray:
    """A fresh decoder state: (pitches, STATE_FIELDS) float64."""
    state = np.zeros((pitches, STATE_FIELDS))
    state[:, S_RUN] = -1.0
    return state
