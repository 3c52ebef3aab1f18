"""Run the shipped models on ONNX Runtime (no torch): embed blocks, decide, glide the targets.

``ModelRunner`` loads ``extractor.onnx`` (the feature extractor) and ``decider.onnx`` (the
content classifier and parameter predictor in one graph) with the manifest beside them
(default: the files shipped in ``auracore/models/weights``), checks them, and runs them with
one intra-op thread on the CUDA execution provider when ONNX Runtime offers it, else on the
CPU. Any missing, corrupt or incompatible file raises
``ModelError`` with one line: what is wrong, which file, what to do.

``Steering`` is the one piece of code that turns a stream of 1024-frame blocks (mono, with
the side signal beside them for stereo) into parameters, for the live inference thread and
for ``render --ai`` alike: it embeds every block, decides every ``decide_every`` blocks
(about 10 Hz at 48 kHz; width from the side blocks by the width model), glides the decisions
with a ``glide_s`` time constant counted in blocks (so the result depends only on the
blocks, never on timing) and holds them while the classifier hears silence. The engine
(``kernels.blend.blend_targets``) mixes them into the manual parameters by ``ai.amount``
when ``ai.enabled`` is on; ``output.gain_db`` aims at ``loudness.target_lufs`` and stays
manual while ``loudness.auto`` is on (the chain's follower does that job then).
"""

import hashlib
import json
import os

import numpy as np

from auracore.errors import ModelError
from auracore.kernels import params as P

from .width import KINDS as WIDTH_KINDS
from .width import WidthFeatures, WidthModel

try:
    import onnxruntime as ort
except ImportError:  # reported as a ModelError when a runner is made, so callers fall back to manual
    ort = None

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FILES = {"extractor": "extractor.onnx", "decider": "decider.onnx"}
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
_FIX = "reinstall auracore or rebuild them with `auracore train`"


def default_model_dir() -> str:
    """The model files shipped in the package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def default_providers() -> list[str]:
    """CUDA first when this ONNX Runtime build has it, then the CPU."""
    _require_ort()
    available = ort.get_available_providers()
    return [CUDA, CPU] if CUDA in available else [CPU]


def _require_ort() -> None:
    if ort is None:
        raise ModelError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu, never both)")


def sha256(path: str) -> str:
    """Hex SHA-256 of a file (the manifest's check of each model file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ModelRunner:
    """The three models on ONNX Runtime, checked against their manifest."""

    def __init__(self, model_dir: str | None = None, providers: list[str] | None = None):
        _require_ort()
        self.model_dir = os.path.abspath(model_dir or default_model_dir())
        manifest = self._manifest()
        self.classes = list(manifest["classes"])
        self.target_ids = list(manifest["target_ids"])
        self.context_blocks = int(manifest["context_blocks"])
        self.block = int(manifest["block"])
        self.embed_dim = int(manifest["embed_dim"])
        self.sample_rate = int(manifest["sample_rate"])
        self.reference_lufs = float(manifest["reference_lufs"])
        self._lo = np.array([P.lookup(t).minimum for t in self.target_ids], dtype=np.float32)
        self._hi = np.array([P.lookup(t).maximum for t in self.target_ids], dtype=np.float32)
        self._gain_index = self.target_ids.index("output.gain_db") if "output.gain_db" in self.target_ids else None
        wanted = list(providers) if providers else default_providers()
        available = ort.get_available_providers()
        usable = [p for p in wanted if p in available]
        if not usable:
            raise ModelError(f"none of the execution providers {wanted} is available in this ONNX Runtime "
                             f"(it has {available})")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # the audio callback keeps the other core
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._sessions = {}
        for name, fname in FILES.items():
            path = os.path.join(self.model_dir, fname)
            if sha256(path) != manifest["sha256"].get(name):
                raise ModelError(f"model file corrupt: {path} does not match its checksum in {MANIFEST}; {_FIX}")
            try:
                self._sessions[name] = ort.InferenceSession(path, sess_options=opts, providers=usable)
            except Exception as exc:  # ONNX Runtime raises its own exception types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelError(f"model file unreadable: {path}: {first[:200]}; {_FIX}") from None
        self._check_shapes()
        self.provider = self._sessions["extractor"].get_providers()[0]
        # the width model (models/width.py) hears the stereo input; optional: without it the
        # decider's width.amount (a prior: the extractor hears mono) stands
        self.width = WidthModel(self.model_dir, usable) if WidthModel.present(self.model_dir) else None

    def _manifest(self) -> dict:
        path = os.path.join(self.model_dir, MANIFEST)
        for f in [MANIFEST] + list(FILES.values()):
            if not os.path.isfile(os.path.join(self.model_dir, f)):
                raise ModelError(f"model file missing: {os.path.join(self.model_dir, f)}; {_FIX}")
        try:
            with open(path) as f:
                manifest = json.load(f)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model file corrupt: {path} is not valid JSON ({exc}); {_FIX}") from None
        keys = ("format", "classes", "target_ids", "context_blocks", "block", "embed_dim", "sample_rate",
                "reference_lufs", "sha256")
        if not isinstance(manifest, dict) or any(k not in manifest for k in keys):
            raise ModelError(f"model file corrupt: {path} lacks {', '.join(keys)}; {_FIX}")
        if manifest["format"] != MANIFEST_FORMAT:
            raise ModelError(f"model files incompatible: {path} has format {manifest['format']}, this "
                             f"auracore reads format {MANIFEST_FORMAT}; {_FIX}")
        unknown = [t for t in manifest["target_ids"] if t not in P.INDEX]
        if unknown:
            raise ModelError(f"model files incompatible: {path} targets unknown parameters {unknown}; {_FIX}")
        return manifest

    def _check_shapes(self) -> None:
        want = {
            "extractor": ([("block", self.block)], [("embedding", self.embed_dim)]),
            "decider": ([("embeddings", self.embed_dim)],
                        [("probabilities", len(self.classes)), ("targets", len(self.target_ids))]),
        }
        for name, (ins, outs) in want.items():
            sess = self._sessions[name]
            got_in = [(i.name, i.shape[-1]) for i in sess.get_inputs()]
            got_out = [(o.name, o.shape[-1]) for o in sess.get_outputs()]
            if got_in != ins or got_out != outs:
                path = os.path.join(self.model_dir, FILES[name])
                raise ModelError(f"model files incompatible: {path} has inputs {got_in} and outputs {got_out}, "
                                 f"the manifest expects {ins} and {outs}; {_FIX}")

    def embed_batch(self, blocks: np.ndarray) -> np.ndarray:
        """(N, 1024) float32 mono blocks -> (N, 32) float32 embeddings."""
        x = np.ascontiguousarray(blocks, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.block:
            raise ValueError(f"blocks must be (N, {self.block}), got shape {x.shape}")
        return self._sessions["extractor"].run(None, {"block": x})[0]

    def embed(self, block: np.ndarray) -> np.ndarray:
        """(1024,) float32 mono block -> (32,) float32 embedding."""
        return self.embed_batch(np.reshape(block, (1, -1)))[0]

    def decide(self, embeddings: np.ndarray, target_lufs: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(T, 32) recent embeddings (T >= 2; context_blocks is what the models learned on) ->
        (class probabilities (C,), targets (len(target_ids),) in registry units, clamped to
        the registry's ranges). output.gain_db aims at target_lufs (default: the registry's
        default loudness.target_lufs)."""
        e = np.ascontiguousarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or e.shape[1] != self.embed_dim or e.shape[0] < 2:
            raise ValueError(f"embeddings must be (T >= 2, {self.embed_dim}), got shape {e.shape}")
        probs, targets = self._sessions["decider"].run(None, {"embeddings": e[None]})
        targets = targets[0]
        if self._gain_index is not None:
            goal = P.lookup("loudness.target_lufs").default if target_lufs is None else float(target_lufs)
            targets[self._gain_index] += goal - self.reference_lufs
        return probs[0], np.clip(targets, self._lo, self._hi)


NEUTRAL_TARGETS = {"comp.threshold_db": 0.0, "comp.ratio": 1.0, "width.amount": 1.0}
# "do no harm": the models' EQ requests are soft-thresholded by this much (a request of 2.5 dB
# becomes 1.5, one of 0.8 becomes 0). On clean clips the raw models ask up to 2.4 dB (held
# out) and 1.9 dB (out of domain; 4.2 in the first run of that set) of a band; see the model card.
EQ_DEADBAND_DB = 1.0


def shrink_eq(target_ids, targets: np.ndarray, deadband_db: float = EQ_DEADBAND_DB) -> np.ndarray:
    """targets with each EQ band gain moved deadband_db toward 0 (and 0 within it); a copy."""
    out = np.array(targets, dtype=np.float64, copy=True)
    for i, t in enumerate(target_ids):
        if t.startswith("eq.") and t.endswith(".gain_db"):
            out[i] = np.sign(out[i]) * max(abs(out[i]) - deadband_db, 0.0)
    return out


class Steering:
    """Blocks in, glided AI targets out (see the module docstring). Set ``target_lufs`` (the
    manual loudness.target_lufs) before ``push``; read ``targets`` (in ``runner.target_ids``
    order, registry units) or ``write_targets`` into a parameter-sized vector.

    Deterministic: the same blocks give the same targets, whatever the timing."""

    def __init__(self, runner: ModelRunner, decide_every: int = 5, glide_s: float = 2.0,
                 silence_hold: float = 0.5, eq_deadband_db: float = EQ_DEADBAND_DB):
        self.runner = runner
        self.eq_deadband_db = float(eq_deadband_db)
        self.decide_every = int(decide_every)
        self.silence_hold = float(silence_hold)
        block_s = runner.block / runner.sample_rate
        self.glide_coef = 1.0 - float(np.exp(-block_s / glide_s))
        self.indices = np.array([P.INDEX[t] for t in runner.target_ids])
        self.context = np.zeros((runner.context_blocks, runner.embed_dim), dtype=np.float32)
        self.filled = 0
        self.blocks = 0
        self.target_lufs = P.lookup("loudness.target_lufs").default
        # start from "no correction", so switching the AI on mid-stream glides in from neutral
        self.decision = np.array([NEUTRAL_TARGETS.get(t, 0.0) for t in runner.target_ids], dtype=np.float64)
        self.targets = self.decision.copy()
        self.probabilities = np.full(len(runner.classes), 1.0 / len(runner.classes))
        self._silence = runner.classes.index("silence") if "silence" in runner.classes else None
        # width from the stereo input: the width model's features over the side blocks pushed
        self.width = None
        if runner.width is not None and "width.amount" in runner.target_ids \
                and all(k in runner.classes for k in WIDTH_KINDS):
            self.width = WidthFeatures(runner.sample_rate)
            self._width_index = runner.target_ids.index("width.amount")
            self._kinds = [runner.classes.index(k) for k in WIDTH_KINDS]
        self.stereo_blocks = 0

    def push(self, block: np.ndarray, side: np.ndarray | None = None) -> bool:
        """Take one (1024,) mono block (the channel mean) and, for a stereo stream, its side
        block ((left - right) / 2); returns True when a new decision was made. With side
        blocks (and the width model shipped), width.amount comes from the width model on
        what it heard, instead of the decider's prior."""
        if side is not None and self.width is not None:
            self.width.push(block, side)
            self.stereo_blocks += 1
        self.context = np.roll(self.context, -1, axis=0)
        self.context[-1] = self.runner.embed(block)
        self.filled = min(self.filled + 1, self.context.shape[0])
        self.blocks += 1
        decided = False
        if self.filled >= 2 and self.blocks % self.decide_every == 0:
            probs, targets = self.runner.decide(self.context[-self.filled:], self.target_lufs)
            self.probabilities = probs
            if self._silence is None or probs[self._silence] < self.silence_hold:
                self.decision = shrink_eq(self.runner.target_ids, targets, self.eq_deadband_db)
                # the width model learned on whole clips: it decides once it has heard a context
                if self.stereo_blocks >= self.runner.context_blocks and self.width.heard:
                    features = self.width.vector(probs[self._kinds])
                    self.decision[self._width_index] = self.runner.width.amount(features)
            decided = True
        self.targets += self.glide_coef * (self.decision - self.targets)
        return decided

    def write_targets(self, vector: np.ndarray) -> None:
        """Write the glided targets into their places in a (N_PARAMS,) vector (the engine's
        target mailbox format; kernels.blend.blend_targets mixes them in)."""
        vector[self.indices] = self.targets


def open_session(path: str, threads: int = 0, providers: list[str] | None = None):
    """An ONNX Runtime session for the model file at path: CUDA when this build offers it,
    else the CPU; threads intra-op threads (0: ONNX Runtime's default). ModelError (one
    line) for a missing or unreadable file or a missing onnxruntime."""
    _require_ort()
    if not os.path.isfile(path):
        raise ModelError(f"model file missing: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=providers or default_providers())
    except Exception as exc:  # ONNX Runtime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model file unreadable: {path}: {first[:200]}") from None


_SHARED = None


def shared_runner() -> "ModelRunner":
    """One ModelRunner on the shipped models for the whole process, made on first use (the
    offline steps that need the models' view of a signal share it). ModelError as
    ModelRunner raises it."""
    global _SHARED
    if _SHARED is None:
        _SHARED = ModelRunner()
    return _SHARED
