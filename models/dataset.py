"""Build the training data in one deterministic pass: pieces, flawed copies, features, targets, split by piece.

``build(work_dir, scale, seed, jobs)`` plans the pieces (``PIECES_PER_CLASS`` times scale of
each class), gives every piece to train, validation or test (70/15/15 within each class, by
a seeded permutation of pieces, so no piece's copies straddle two splits), renders each clean
piece once, makes ``COPIES`` flawed copies of it (``degrade``) and stores per copy what the
training loop needs, never the audio:

- ``feats``: the extractor's fixed frontend on every 1024-frame mono block of the flawed copy,
- ``band_flawed`` / ``band_clean``: 1/3-octave band power per block of the flawed copy and of
  the compressor input it should become once its EQ flaw is undone (the spectral loss),
- ``env``: per 128-frame hop, the compressor input's detector level and mean square and the
  mean square the compressor should put out (the dynamics loss),
- ``kw_energy``: per block, the BS.1770 energy of what the chain should put out before its
  final gain (the loudness gain a window asks for),
- the targets, the class, the piece, the split and the flaw description.

The test pieces' clean clips are kept as float32 .npy files so the evaluation can remake each
flawed copy from its flaw description and run the shipped models on real audio.
"""

import json
import multiprocessing
import os
import time

import numpy as np

from . import degrade, dsp, sources
from .nets import BLOCK, CLASSES

PIECES_PER_CLASS = {"acoustic": 100, "band": 100, "speech": 100, "noise": 60, "silence": 30}
COPIES = {"acoustic": 4, "band": 4, "speech": 4, "noise": 2, "silence": 2}
SPLITS = ("train", "val", "test")
HOP = 128
DATA_FILE = "data.npz"
CLIPS_FILE = "clips.json"


def plan_pieces(scale: float, seed: int, counts: dict | None = None) -> list[dict]:
    """Every piece to make: kind, score (corpus path or ''), seed, id, split. counts, if
    given, sets the number of pieces per class instead of PIECES_PER_CLASS x scale."""
    scores = sources.corpus_scores()
    pieces = []
    for ci, kind in enumerate(CLASSES):
        n = counts.get(kind, 0) if counts is not None else max(3, int(round(PIECES_PER_CLASS[kind] * scale)))
        if n == 0:
            continue
        rng = np.random.default_rng([seed, ci])
        order = rng.permutation(n)
        n_val = max(1, int(round(0.15 * n)))
        split_of = {}
        for rank, i in enumerate(order):
            split_of[int(i)] = "test" if rank < n_val else "val" if rank < 2 * n_val else "train"
        for i in range(n):
            if kind == "acoustic":
                ref = scores[2 * i]            # acoustic and band arrangements use disjoint scores
            elif kind == "band":
                ref = scores[2 * (i // 2) + 1] if i % 2 == 0 else ""  # every other band piece is electronic
            else:
                ref = ""
            pieces.append({"kind": kind, "ref": ref, "seed": int(seed * 100003 + ci * 1009 + i),
                           "id": f"{kind}-{i:03d}", "split": split_of[i]})
    return pieces


def _frontend():
    import torch

    from .nets import Frontend

    torch.set_num_threads(1)
    return Frontend().eval()


_FRONTEND = None


def mono_blocks(x: np.ndarray) -> np.ndarray:
    """(frames, channels) to (blocks, 1024) float32 mono (channel mean), whole blocks only."""
    m = np.asarray(x, dtype=np.float64).mean(axis=1)
    n = m.shape[0] // BLOCK
    return m[:n * BLOCK].reshape(n, BLOCK).astype(np.float32)


def frontend_features(x: np.ndarray) -> np.ndarray:
    """The extractor's fixed frontend on every mono block of x: (blocks, FRONTEND_FEATURES) float32."""
    import torch

    global _FRONTEND
    if _FRONTEND is None:
        _FRONTEND = _frontend()
    with torch.no_grad():
        return _FRONTEND(torch.from_numpy(mono_blocks(x))).numpy()


def build_piece(args) -> dict:
    """One piece: its clean clip and flawed copies as arrays (see the module docstring)."""
    piece, seed, clean_dir = args
    try:
        clean, desc = sources.make_clean(piece["kind"], piece["ref"], piece["seed"])
    except sources.SourceError as exc:
        return {"piece": piece, "error": str(exc)}
    if piece["split"] == "test":
        np.save(os.path.join(clean_dir, piece["id"] + ".npy"), clean.astype(np.float32))
    copies = []
    for c in range(COPIES[piece["kind"]]):
        rng = np.random.default_rng([seed, piece["seed"], c])
        flaws = degrade.draw_flaws(rng, piece["kind"])
        made = degrade.apply_flaws(clean, flaws, piece["kind"])
        peak, ms_in = dsp.hop_envelope(made["comp_input"], HOP)
        _, ms_out = dsp.hop_envelope(made["comp_output"], HOP)
        copies.append({
            "feats": frontend_features(made["flawed"]),
            "band_flawed": dsp.block_band_power(made["flawed"]),
            "band_clean": dsp.block_band_power(made["comp_input"]),
            "env": np.stack([peak, ms_in, ms_out], axis=1),
            "kw_energy": dsp.block_kweighted_energy(made["reference"]),
            "targets": degrade.target_vector(made["targets"]),
            "flaws": flaws,
        })
    return {"piece": piece, "desc": desc, "copies": copies}


def build(work_dir: str, scale: float = 1.0, seed: int = 1, jobs: int = 2, log=print,
          counts: dict | None = None) -> dict:
    """Make the data set in work_dir (DATA_FILE, CLIPS_FILE, clean/ for test pieces); returns
    a summary (clips per class and split, pieces skipped, seconds). counts: see plan_pieces."""
    sources.require_tools()
    t0 = time.time()
    clean_dir = os.path.join(work_dir, "clean")
    os.makedirs(clean_dir, exist_ok=True)
    pieces = plan_pieces(scale, seed, counts)
    args = [(p, seed, clean_dir) for p in pieces]
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = list(_progress(pool.imap(build_piece, args, chunksize=1), len(args), log))
    else:
        results = list(_progress(map(build_piece, args), len(args), log))
    arrays = {k: [] for k in ("feats", "band_flawed", "band_clean", "env", "kw_energy")}
    clips, skipped = [], []
    block_pos = hop_pos = 0
    for r in results:
        if "error" in r:
            skipped.append(f"{r['piece']['id']}: {r['error']}")
            continue
        for c, copy in enumerate(r["copies"]):
            nb = copy["feats"].shape[0]
            nh = copy["env"].shape[0]
            for k in arrays:
                arrays[k].append(copy[k])
            clips.append({"piece": r["piece"]["id"], "kind": r["piece"]["kind"], "split": r["piece"]["split"],
                          "copy": c, "desc": r["desc"], "block0": block_pos, "blocks": nb,
                          "hop0": hop_pos, "hops": nh, "targets": copy["targets"].tolist(),
                          "flaws": copy["flaws"]})
            block_pos += nb
            hop_pos += nh
    np.savez(os.path.join(work_dir, DATA_FILE), **{k: np.concatenate(v) for k, v in arrays.items()})
    with open(os.path.join(work_dir, CLIPS_FILE), "w") as f:
        json.dump({"seed": seed, "scale": scale, "clips": clips, "skipped": skipped}, f)
    summary = {"clips": {s: {k: sum(1 for c in clips if c["split"] == s and c["kind"] == k) for k in CLASSES}
                         for s in SPLITS},
               "pieces": {s: len({c["piece"] for c in clips if c["split"] == s}) for s in SPLITS},
               "skipped": skipped, "seconds": round(time.time() - t0, 1)}
    log(f"data: {len(clips)} clips from {len(pieces) - len(skipped)} pieces in {summary['seconds']} s")
    return summary


def _progress(it, total, log):
    t0 = time.time()
    for i, r in enumerate(it, 1):
        if i == total or i % max(1, total // 10) == 0:
            log(f"data: {i}/{total} pieces ({time.time() - t0:.0f} s)")
        yield r


def load(work_dir: str) -> tuple[dict, list[dict]]:
    """The arrays and the clip table written by ``build``."""
    with np.load(os.path.join(work_dir, DATA_FILE)) as z:
        arrays = {k: z[k] for k in z.files}
    with open(os.path.join(work_dir, CLIPS_FILE)) as f:
        clips = json.load(f)["clips"]
    return arrays, clips
