"""Key and mode (with a confidence and the runner-up) and chords per beat, from chroma.

- Key: the track's chroma (each frame's chroma divided by its total, weighted by the frame's
  loudness share, so loud and quiet passages count by their length) correlated with the 24
  rotations of the Krumhansl-Kessler major and minor profiles. The confidence is the gap
  between the best and the runner-up correlation over the best's distance to -1, 0..1.
- Chords: the whitened chroma (``Features.whitened_chroma``: the semitone energies with the
  track's long-term spectral tilt taken out and a fixed register weight put in, so a static
  EQ tilt does not change which notes win) averaged between consecutive beats,
  log-compressed and normalised,
  matched by cosine against templates for 12 roots x (maj, min, 7, maj7, min7) (chord tones
  weighted root 1, fifth 0.8, third 1, seventh 0.7, each with its
  harmonics) and ``N`` (no chord: a beat whose
  chroma is flat or whose level is 40 dB under the track's loudest beats). A Viterbi pass
  with a bonus for staying on a chord smooths the beat-wise choice. Labels are in the
  Harte / mir_eval syntax: ``C:maj``, ``A:min``, ``G:7``, ``F:maj7``, ``D:min7``, ``N``.
"""

import math
from dataclasses import dataclass

import numpy as np

from .features import CHROMA_STEP, Features, extract
from .tempo import TempoBeats, from_features as _tempo_from_features

PITCHES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Albrecht and Shanahan (2013), pitch-class distributions of a corpus of major / minor pieces
AS_MAJOR = np.array([0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081])
AS_MINOR = np.array([0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052])
PROFILES = {"kk": (KK_MAJOR, KK_MINOR), "as": (AS_MAJOR, AS_MINOR)}
KEY_PROFILE = "as"
KEY_COMPRESSION = 0.5
QUALITIES = {  # interval: weight
    "maj": {0: 1.0, 4: 1.0, 7: 0.8},
    "min": {0: 1.0, 3: 1.0, 7: 0.8},
    "7": {0: 1.0, 4: 1.0, 7: 0.8, 10: 0.7},
    "maj7": {0: 1.0, 4: 1.0, 7: 0.8, 11: 0.7},
    "min7": {0: 1.0, 3: 1.0, 7: 0.8, 10: 0.7},
}
HARMONICS = (0, 0, 7, 0, 4, 7)
HARMONIC_DECAY = 0.6
SEVENTH_PENALTY = 0.04
STAY_BONUS = 0.08
N_FLOOR_DB = -40.0
N_FLATNESS = 0.97


@dataclass(frozen=True)
class KeyChords:
    """Key, mode and chords of a signal; chord times in seconds."""

    key: str | None               # "A minor"
    key_confidence: float
    key_runner_up: str | None
    key_scores: tuple = ()        # ((key, correlation), ...) best first, all 24
    chords: tuple = ()            # ((start_s, end_s, label), ...)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "key_confidence": round(float(self.key_confidence), 3),
            "key_runner_up": self.key_runner_up,
            "chords": [{"start_s": round(a, 4), "end_s": round(b, 4), "label": c} for a, b, c in self.chords],
        }


def key_name(tonic: int, minor: bool) -> str:
    """"A minor" / "Eb major" for a pitch class 0..11 (C = 0)."""
    return f"{PITCHES[tonic % 12]} {'minor' if minor else 'major'}"


def estimate_key(chroma: np.ndarray) -> tuple[str | None, float, str | None, tuple]:
    """(key, confidence, runner-up, all scores) of chroma: (12, frames) energy."""
    if chroma.shape[1] == 0:
        return None, 0.0, None, ()
    total = chroma.sum(axis=0)
    if not np.any(total > 0):
        return None, 0.0, None, ()
    prof = chroma.sum(axis=1)
    prof = prof / prof.sum()
    prof = prof ** KEY_COMPRESSION  # soften the dominance of the loudest pitch classes
    scores = []
    major_p, minor_p = PROFILES[KEY_PROFILE]
    for minor, base in ((False, major_p), (True, minor_p)):
        for tonic in range(12):
            ref = np.roll(base, tonic)
            scores.append((key_name(tonic, minor), float(np.corrcoef(prof, ref)[0, 1])))
    scores.sort(key=lambda s: -s[1])
    conf = (scores[0][1] - scores[1][1]) / max(scores[0][1] + 1.0, 1e-9)
    return scores[0][0], float(min(max(conf * 4.0, 0.0), 1.0)), scores[1][0], tuple(scores)


def chord_templates() -> tuple[list[str], np.ndarray]:
    """(labels, (n, 12) unit templates) for every root and quality; each chord tone brings
    its first six harmonics (pitch classes +0, +0, +7, +0, +4, +7, amplitudes HARMONIC_DECAY**k),
    so a triad's third (whose third harmonic is the major seventh) is not taken for a maj7."""
    labels, rows = [], []
    for q, tones in QUALITIES.items():
        for root in range(12):
            t = np.zeros(12)
            for iv, w in tones.items():
                for k, h in enumerate(HARMONICS):
                    t[(root + iv + h) % 12] += w * HARMONIC_DECAY ** k
            labels.append(f"{PITCHES[root]}:{q}")
            rows.append(t / np.linalg.norm(t))
    return labels, np.array(rows)


def beat_chroma(chroma: np.ndarray, frame_s: float, edges_s: np.ndarray) -> np.ndarray:
    """Mean chroma between consecutive edges: (12, len(edges) - 1)."""
    idx = np.clip(np.round(edges_s / frame_s).astype(int), 0, chroma.shape[1])
    out = np.zeros((12, max(idx.size - 1, 0)))
    for i in range(idx.size - 1):
        a, b = idx[i], max(idx[i + 1], idx[i] + 1)
        if a < chroma.shape[1]:
            out[:, i] = chroma[:, a:b].mean(axis=1)
    return out


def estimate_chords(chroma: np.ndarray, frame_s: float, beats_s, duration_s: float) -> tuple:
    """((start_s, end_s, label), ...) per beat span, merged where a label repeats.
    chroma: (12, frames) at frame_s seconds per frame; beats_s: beat times (s)."""
    beats = np.asarray(beats_s, dtype=np.float64)
    if beats.size < 2:
        return ()
    edges = np.concatenate((beats, [min(duration_s, beats[-1] + (beats[-1] - beats[-2]))]))
    bc = beat_chroma(chroma, frame_s, edges)
    energy = bc.sum(axis=0)
    level_db = 10.0 * np.log10(np.maximum(energy, 1e-20))
    loud = np.percentile(level_db, 95) if level_db.size else 0.0
    v = np.sqrt(bc)
    v = v / np.maximum(np.linalg.norm(v, axis=0), 1e-12)
    labels, temp = chord_templates()
    sim = temp @ v  # (chords, beats)
    sim -= np.array([SEVENTH_PENALTY if ":" in lab and lab.split(":")[1] in ("7", "maj7", "min7") else 0.0
                     for lab in labels])[:, None]
    flat = v.sum(axis=0) / math.sqrt(12.0)  # cosine with the flat vector
    n_score = np.where((level_db < loud + N_FLOOR_DB) | (flat > N_FLATNESS), 2.0, 0.0)
    obs = np.vstack((sim, n_score[None, :]))
    labels = labels + ["N"]
    # Viterbi with a bonus for staying on the same chord
    k, n = obs.shape
    score = obs[:, 0].copy()
    back = np.zeros((k, n), dtype=np.int64)
    for t in range(1, n):
        stay = score + STAY_BONUS
        best_other = int(np.argmax(score))
        take_stay = stay >= score[best_other]
        back[:, t] = np.where(take_stay, np.arange(k), best_other)
        score = np.where(take_stay, stay, score[best_other]) + obs[:, t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[path[t], t]
    out = []
    for i, j in enumerate(path):
        lab = labels[j]
        if out and out[-1][2] == lab:
            out[-1] = (out[-1][0], float(edges[i + 1]), lab)
        else:
            out.append((float(edges[i]), float(edges[i + 1]), lab))
    return tuple(out)


def from_features(feat: Features, tempo: TempoBeats) -> KeyChords:
    """Key and chords from extracted features and the beats of ``tempo``."""
    key, conf, runner, scores = estimate_key(feat.chroma)
    frame_s = feat.hop * CHROMA_STEP / feat.sample_rate
    chords = estimate_chords(feat.whitened_chroma(), frame_s, tempo.beats_s, feat.duration_s)
    return KeyChords(key=key, key_confidence=conf, key_runner_up=runner, key_scores=scores, chords=chords)


def key_and_chords(x: np.ndarray, sample_rate: int, beats_s=None) -> KeyChords:
    """Key (e.g. "A minor", confidence 0..1, runner-up) and chords per beat of
    x: (frames, channels) or (frames,) float at sample_rate Hz; beats_s: beat times (s),
    found with ``tempo_and_beats`` when None."""
    feat = extract(x, sample_rate, loudness=False)
    tempo = _tempo_from_features(feat) if beats_s is None else TempoBeats(
        tempo_bpm=None, tempo_confidence=0.0, beats_s=tuple(float(b) for b in beats_s))
    return from_features(feat, tempo)
