"""The A/B quality score: align B (the candidate) on A (the original), score 12 dimensions 0-100, weigh them.

Dimensions that need another step (sections, chords, tempo and RT60 from
``auracore.offline.profile``; stems from ``auracore.offline.separate``; notes from
``auracore.offline.transcribe``; the embedding from the shipped models) use that step;
when it is not available in this build, the dimension is reported as null with the reason
in ``details`` and the overall score is weighed over the others.
"""

import importlib
import math
from dataclasses import dataclass, field

import numpy as np

from auracore.errors import AudioFileError, AuraCoreError

from . import dimensions as D
from .align import align, integrated_lufs, to_rate
from .modulation import modulation_spectrum
from .timemap import TimeMap, choose

# name: weight (points of 100) -- see docs/qc.md for why each weighs what it does
WEIGHTS = {
    "spectral": 12, "rms_per_section": 8, "width": 6, "bass_notes": 8, "kick_pattern": 8,
    "harmonic_progression": 10, "energy_curve": 8, "reverb": 6, "dynamic_range": 8, "bpm": 8,
    "arrangement": 8, "timbre": 10,
}
DIMENSIONS = tuple(WEIGHTS)
WEAKEST = 3
MIN_SECONDS = 1.0
# the separator for the bass dimension (the bass line is read without the drums): the DSP
# one, on which its rule was measured (docs/qc.md)
QC_SEPARATOR = "dsp"
# analyses no cache keeps: whole arrays (the separated stems), needed only to make the bass
# line, which is kept
UNCACHED = ("stems",)
# part of the disk cache's key: raise it when an analysis the cache keeps changes
QC_CACHE_VERSION = 5


@dataclass(frozen=True)
class QCReport:
    """The score (0-100), every dimension's score (None when it could not be computed), the
    weakest dimensions, the alignment (offset_s: B later than A by this, gain_db applied to
    B) and each dimension's measured figures."""

    score: float
    dimensions: dict
    weakest: list
    alignment: dict
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """What ``--json`` prints (NaN/inf as None)."""
        return _json_safe({"score": self.score, "dimensions": self.dimensions, "weakest": self.weakest,
                           "alignment": self.alignment, "details": self.details})


def _json_safe(v):
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return round(float(v), 4) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _embedding(x: np.ndarray, sample_rate: int, runner) -> np.ndarray:
    """x's embeddings: mono at the models' rate and reference loudness, per 1024-sample block."""
    y = to_rate(x, sample_rate, runner.sample_rate).mean(axis=1, keepdims=True)
    lufs = integrated_lufs(y, runner.sample_rate)
    if math.isfinite(lufs):
        y = y * 10 ** ((runner.reference_lufs - lufs) / 20)
    n = y.shape[0] // runner.block
    return runner.embed_batch(y[:n * runner.block, 0].reshape(n, runner.block).astype(np.float32))


def _timbre(al, runner=None, memo=None, tmap: TimeMap = D.OWN_TIME) -> tuple[float, dict]:
    """The project's embedding (extractor: 1024-sample mono blocks -> 32 numbers), both
    signals at the models' rate and reference loudness, block by block: score
    100 (s - EMBED_FLOOR) / (1 - EMBED_FLOOR), s the mean cosine similarity of paired blocks
    (paired on A's time by tmap, default B's own). runner: default the shipped models;
    memo: default none (computed here)."""
    if runner is None:
        from auracore.models.runtime import ModelRunner

        runner = ModelRunner()
    memo = memo or (lambda side, name, fn: fn())
    embs = [memo(side, "embedding", lambda x=x: _embedding(x, al.sample_rate, runner))
            for side, x in (("a", al.a), ("b", al.b))]
    s = D.embedding_similarity(*embs, tmap=tmap, hop_s=runner.block / runner.sample_rate)
    return 100.0 * min(max((s - D.EMBED_FLOOR) / (1.0 - D.EMBED_FLOOR), 0.0), 1.0), {"cosine": s, "blocks": int(embs[0].shape[0])}


class _Memo:
    """Analyses kept in the caller's cache (a dict: the original's side; a ``DiskCache``: both), keyed by
    what the side is once aligned (its rate, shape and a digest of its samples) and the
    analysis' name: a caller scoring many candidates against one original (reconstruct's
    rounds) analyses the original once, and a pair scored again reads everything back. No
    cache: computed each time."""

    def __init__(self, cache, al):
        self.cache = cache
        self.local = {}
        self.keys = {}
        if cache is not None:
            import hashlib

            for side, x in (("a", al.a), ("b", al.b)):
                digest = hashlib.blake2b(np.ascontiguousarray(x).view(np.uint8), digest_size=16).hexdigest()
                self.keys[side] = (al.sample_rate, x.shape, digest)

    def __call__(self, side: str, name: str, fn):
        """fn()'s value for (side, name), computed once per qc call (``local``) and, when the
        caller's cache keeps that side, once per cache."""
        if (side, name) in self.local:
            return self.local[side, name]
        # a dict keeps the original's side only (reconstruct scores a new B every round: its
        # stems would pile up in memory); a DiskCache keeps both. Neither keeps UNCACHED
        if (self.cache is None or name in UNCACHED
                or (side == "b" and not getattr(self.cache, "keeps_b", False))):
            value = fn()
        else:
            k = (self.keys[side], name)
            try:
                value = self.cache[k]  # one read (a DiskCache entry is unpickled once)
            except KeyError:
                value = fn()
                self.cache[k] = value
        self.local[side, name] = value
        return value


_MISSING = object()


class DiskCache:
    """A folder as qc's cache: one pickle per analysis, named by a digest of its key and of
    this build's version (another version reads nothing back), written atomically. Stems
    (whole arrays) are not kept: the notes and onsets made from them are, which is all a
    second run needs."""

    keeps_b = True

    def __init__(self, folder: str):
        import os

        from auracore import __version__

        self.folder = folder
        self.version = f"{__version__}/{QC_CACHE_VERSION}"
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise AudioFileError(f"{folder}: cannot make the cache folder ({exc.strerror})") from None

    def _path(self, key) -> str:
        import hashlib
        import os

        return os.path.join(self.folder, hashlib.sha1(repr((self.version, key)).encode()).hexdigest() + ".pkl")

    def _load(self, key):
        """The stored value, or _MISSING when the file is unreadable (truncated by a crash
        elsewhere, another pickle format): then it is computed again."""
        import pickle

        try:
            with open(self._path(key), "rb") as f:
                return pickle.load(f)
        except Exception:  # any unreadable entry is a miss, never an error
            return _MISSING

    def __getitem__(self, key):
        value = self._load(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value) -> None:
        import os
        import pickle
        import tempfile

        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        except OSError:  # not writable: the cache is only a cache
            return
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self._path(key))
        except OSError:  # a full disk: the cache is only a cache
            if os.path.exists(tmp):
                os.remove(tmp)


def _stems(al, logs: dict, memo):
    """A function side -> that side's stems (made on first use, kept in memo), or None when
    the separation step is not in this build. logs: {side: log(line)}."""
    sep = _optional("auracore.offline.separate")
    if sep is None:
        return None

    def split(side):
        x = al.a if side == "a" else al.b
        return memo(side, "stems", lambda: sep.separate(x, al.sample_rate, stems=("drums",),
                                                       model=QC_SEPARATOR, log=logs[side]))

    return split


def _side_steps(al, memo, stems, profile, runner) -> dict:
    """{side: [(name, fn)]}: the heavy analyses of each side, each through memo."""
    steps = {}
    for side, x in (("a", al.a), ("b", al.b)):
        todo = []
        if runner is not None:
            todo.append(lambda side=side, x=x: memo(side, "embedding", lambda: _embedding(x, al.sample_rate, runner)))
        if stems is not None:
            todo.append(lambda side=side: _side_bass_line(al, memo, stems, side))
        todo.append(lambda side=side: _side_kicks(al, memo, side))
        if profile is not None:
            todo.append(lambda side=side, x=x: memo(side, "profile", lambda: profile.profile(x, al.sample_rate)))
            todo.append(lambda side=side, x=x: memo(side, "rt60", lambda: profile.rt60(x, al.sample_rate)))
            todo.append(lambda side=side, x=x: memo(side, "modulation", lambda: modulation_spectrum(x, al.sample_rate)))
        steps[side] = todo
    return steps


def _prefetch(steps: dict) -> None:
    """Run each side's analyses, A's and B's on two threads at once (their kernels, FFTs and
    ONNX Runtime calls release the GIL: a pair takes about the time of its slower side). A
    step that fails is left for the scoring below to meet again and report."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()

    def run(todo):
        for fn in todo:
            if stop.is_set():  # the caller was interrupted: no new step
                return
            try:
                fn()
            except Exception:  # met again (and reported) where the dimension is scored
                pass

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auracore-qc")
    try:
        list(pool.map(run, steps.values()))
    finally:
        stop.set()  # on a signal (KeyboardInterrupt, Terminated): the steps under way finish, no more start
        pool.shutdown(wait=True, cancel_futures=True)


def _side_bass_line(al, memo, stems, side: str) -> list:
    """One side's bass line (through memo): the transcription, in the bass range, of the
    aligned signal without its separated drums."""
    x = al.a if side == "a" else al.b
    return memo(side, "bass_line", lambda: bass_line(_notes(x - stems(side)["drums"], al.sample_rate, "bass")))


def _side_kicks(al, memo, side: str) -> list:
    """One side's kicks (through memo)."""
    return memo(side, "kicks", lambda: _kicks(al.a if side == "a" else al.b, al.sample_rate))


def bass_line(notes, cluster_s: float = D.NOTE_ONSET_TOLERANCE_S) -> list:
    """(onset_s, pitch) of the lowest note of each group of onsets within cluster_s: the
    bass line of a transcription limited to the bass range (``transcribe.lowest_line``)."""
    from auracore.offline.transcribe.notes import lowest_line

    return [(n.onset_s, n.pitch) for n in lowest_line(notes, cluster_s)]


def _kicks(x, sample_rate) -> list:
    """(onset_s, 0) of each kick of the whole mix x (``transcribe.kicks``)."""
    from auracore.offline.transcribe.kicks import kick_onsets

    return [(t, 0) for t in kick_onsets(x, sample_rate)]


def _notes(x, sample_rate, kind):
    from auracore.offline.transcribe import transcribe

    return transcribe(x, sample_rate, kind).notes


def _profile_dimensions(al, profile, scores: dict, details: dict, memo, tmap: TimeMap, mels: tuple) -> None:
    """RMS per section, chords, reverb, BPM and arrangement from the profiles of the aligned
    A and B (``auracore.offline.profile``); B's times on A's through tmap; mels: both sides'
    mel spectra (``dimensions.mel_pair``)."""
    duration_s = al.a.shape[0] / al.sample_rate
    pa = memo("a", "profile", lambda: profile.profile(al.a, al.sample_rate))
    pb = memo("b", "profile", lambda: profile.profile(al.b, al.sample_rate))
    scores["rms_per_section"], details["rms_per_section"] = D.rms_per_section(al, pa, tmap)
    scores["harmonic_progression"], details["harmonic_progression"] = D.harmonic_progression(pa, pb, duration_s,
                                                                                             tmap)
    rt_a = memo("a", "rt60", lambda: profile.rt60(al.a, al.sample_rate))
    rt_b = memo("b", "rt60", lambda: profile.rt60(al.b, al.sample_rate))
    mods = [memo(side, "modulation", lambda x=x: modulation_spectrum(x, al.sample_rate))
            for side, x in (("a", al.a), ("b", al.b))]
    scores["reverb"], details["reverb"] = D.reverb(rt_a, rt_b, *mods)
    scores["bpm"], details["bpm"] = D.bpm(pa.tempo_bpm, pb.tempo_bpm, pa.tempo.tempo_candidates,
                                          pb.tempo.tempo_candidates)
    scores["arrangement"], details["arrangement"] = D.arrangement(al, pa, pb, tmap, mels)


def _time_map(al, memo, stems, profile) -> tuple[TimeMap, dict]:
    """B's time on A's (``timemap.choose``): from the profiles' tempi, on the kicks and the
    bass lines' notes. B's own time when a step is missing or fails."""
    try:
        if profile is None:
            return TimeMap(), {"unavailable": "no tempo (auracore.offline.profile is not in this build)"}
        pa = memo("a", "profile", lambda: profile.profile(al.a, al.sample_rate))
        pb = memo("b", "profile", lambda: profile.profile(al.b, al.sample_rate))
        # kicks (label 0) and bass notes (label the pitch)
        events = {side: _side_kicks(al, memo, side) + (_side_bass_line(al, memo, stems, side) if stems else [])
                  for side in ("a", "b")}
    except AuraCoreError as exc:
        return TimeMap(), {"unavailable": str(exc)}
    duration_s = al.a.shape[0] / al.sample_rate
    readings = [[p.tempo_bpm] + [bpm for bpm, _ in (p.tempo.tempo_candidates or ())] for p in (pa, pb)]
    return choose(events["a"], events["b"], readings[0], readings[1], duration_s, duration_s)


def qc(a: np.ndarray, b: np.ndarray, sample_rate: int, b_rate: int | None = None, runner=None,
       log=None, cache: dict | None = None) -> QCReport:
    """Score candidate b against original a.

    Bass notes: the lowest line of the transcription, in the bass range, of each signal
    without its separated drums (the separated bass stem alone keeps too few harmonics for
    the pitch model when the DSP fallback separates);
    kick pattern: the kick onsets of each whole signal (``transcribe.kicks``: low-band onsets
    that die fast or fall in pitch).

    a: (frames, channels) float64 at sample_rate Hz; b: (frames, channels) at b_rate
    (default sample_rate); 1 or 2 channels each. runner: a models.runtime.ModelRunner for
    the timbre dimension (default: the shipped models). log(line): where the steps' notes
    (a fallback taken) go. cache: a dict the caller keeps between calls: A's stems,
    transcriptions, profile, RT60 and embedding are kept in it and reused while A (as
    aligned) is the same, so scoring many candidates against one original analyses it once. Raises AudioFileError when either is silent or shorter than 1 s
    of common audio."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    for x, name in ((a, "A"), (b, "B")):
        if x.ndim != 2 or x.shape[1] not in (1, 2) or x.shape[0] < MIN_SECONDS * (sample_rate if name == "A" else (b_rate or sample_rate)):
            raise AudioFileError(f"{name} must be at least {MIN_SECONDS:g} s of mono or stereo audio, got shape {x.shape}")
    if not math.isfinite(integrated_lufs(a, sample_rate)):
        raise AudioFileError("A is silent (no gated loudness): there is nothing to compare with")
    if not math.isfinite(integrated_lufs(b, b_rate or sample_rate)):
        raise AudioFileError("B is silent (no gated loudness): there is nothing to compare")
    al = align(a, b, sample_rate, b_rate)
    if al.a.shape[0] < MIN_SECONDS * sample_rate:
        raise AudioFileError("A and B overlap by less than 1 s once aligned")
    side_notes = {"a": [], "b": []}  # the steps' notes, A's first (the threads finish in any order)
    scores, details = {}, {}
    memo = _Memo(cache, al)

    def unavailable(name, why):
        scores[name] = None
        details[name] = {"unavailable": why}

    stems = _stems(al, {side: lines.append for side, lines in side_notes.items()}, memo)
    profile = _optional("auracore.offline.profile")
    runner_error = None
    if runner is None:
        from auracore.models.runtime import ModelRunner

        try:
            runner = ModelRunner()
        except AuraCoreError as exc:
            runner_error = exc
    _prefetch(_side_steps(al, memo, stems, profile, runner))
    tmap, details["time_map"] = _time_map(al, memo, stems, profile)
    mels = tuple(memo(side, "mel", lambda x=x: D.mel_db(x, al.sample_rate)) for side, x in (("a", al.a), ("b", al.b)))
    mels += (D.mel_hop_s(al.sample_rate),)
    for name, fn in (("spectral", lambda al: D.spectral(al, tmap, mels)), ("width", D.width),
                     ("energy_curve", lambda al: D.energy(al, tmap)), ("dynamic_range", D.dynamics)):
        scores[name], details[name] = fn(al)
    if runner_error is not None:
        unavailable("timbre", str(runner_error))
    else:
        try:
            scores["timbre"], details["timbre"] = _timbre(al, runner, memo, tmap)
        except AuraCoreError as exc:
            unavailable("timbre", str(exc))
    if stems is None:
        unavailable("bass_notes", "needs auracore.offline.separate (not in this build)")
    else:
        na, nb = (_side_bass_line(al, memo, stems, side) for side in ("a", "b"))
        f1 = D.note_f1(*tmap.events(na, nb))
        scores["bass_notes"] = 100.0 * f1
        details["bass_notes"] = {"f1": f1, "a_notes": len(na), "b_notes": len(nb)}
    ka, kb = (_side_kicks(al, memo, side) for side in ("a", "b"))
    f1 = D.note_f1(*tmap.events(ka, kb), pitch=False)
    scores["kick_pattern"] = 100.0 * f1
    details["kick_pattern"] = {"f1": f1, "a_kicks": len(ka), "b_kicks": len(kb)}
    if profile is None:
        for name in ("rms_per_section", "harmonic_progression", "reverb", "bpm", "arrangement"):
            unavailable(name, "needs auracore.offline.profile (sections, chords, RT60, tempo), not in this build")
    else:
        _profile_dimensions(al, profile, scores, details, memo, tmap, mels)
    notes = side_notes["a"] + side_notes["b"]
    if notes:
        details["notes"] = notes
    avail = {k: v for k, v in scores.items() if v is not None}
    total_w = sum(WEIGHTS[k] for k in avail)
    score = sum(WEIGHTS[k] * v for k, v in avail.items()) / total_w if total_w else math.nan
    dims = {k: (None if scores[k] is None else round(float(scores[k]), 2)) for k in DIMENSIONS}
    weakest = sorted(avail, key=lambda k: avail[k])[:WEAKEST]
    details["weights"] = dict(WEIGHTS)
    details["weighed_over"] = sorted(avail)
    return QCReport(round(float(score), 2), dims, weakest,
                    {"offset_s": round(al.offset_s, 5), "gain_db": round(al.gain_db, 3), **tmap.to_dict()}, details)
