"""Train the separation network on the rendered stems (torch, CPU), within a time budget.

Batches are drawn on the fly from the training split: random excerpts of ``SEGMENT_FRAMES``
STFT frames; with probability ``REMIX`` each stem comes from another piece (the classic
remix augmentation: the mixture is still the exact sum of its stems), with a random gain,
channel swap and, sometimes, silence. The loss is the L1 distance between the masked
mixture magnitude and each stem's magnitude on every bin, so the loss weighs energy as
the SDR does. The held-out ``test`` split gives the validation loss; the best epoch is kept.

Where the CPU has bfloat16 instructions (oneDNN says so), the network runs under bfloat16
autocast with channels-last tensors (the weights, the STFT and the loss stay float32): 1.4x
the steps per minute here (0.92 s a step against 1.32 s on two threads), and the steps, not
the data, are what the time budget limits.

Around the network, the front end (STFT, magnitudes, band pooling) and the loss (spreading
the masks onto every bin, L1) are compiled by torch.compile where a C++ compiler is present
(a first step checks them against the eager functions; any failure falls back to eager, with
a line): 0.71 s a step against 0.97 s measured here, mostly the loss's elementwise passes
over every bin fused. (A moving average of the weights, judged beside them in one full run,
was never the better and is not kept.)
"""

import csv
import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from . import data as D
from . import features as F
from .net import SepNet, parameter_count

SEGMENT_FRAMES = 128
REMIX = 0.5
CURVES_FILE = "separation_curves.csv"
CHECKPOINT = "separation_best.pt"


@dataclass
class TrainConfig:
    max_minutes: float = 75.0  # `auracore train separation`'s default budget
    batch: int = 12
    steps_per_epoch: int = 100
    lr: float = 2e-3
    seed: int = 1
    threads: int = 2
    bf16: bool | None = None  # None: where the CPU supports it
    compile: bool = True  # torch.compile the front end and the loss (falls back to eager)


def bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Frontend(torch.nn.Module):
    """Waveforms -> STFT (the runtime's: sqrt-Hann, features.N_FFT, features.HOP) and band pooling."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.from_numpy(F.window().astype(np.float32)))
        self.register_buffer("pool", torch.from_numpy(F.pooling_matrix().T.copy()))  # (bins, bands)
        self.register_buffer("expand", torch.from_numpy(F.expansion_matrix().T.copy()))  # (bands, bins)

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """(..., samples) -> (..., T, bins) complex."""
        lead = x.shape[:-1]
        s = torch.stft(x.reshape(-1, x.shape[-1]), F.N_FFT, F.HOP, window=self.window, center=False,
                       return_complex=True)
        return s.transpose(-1, -2).reshape(*lead, s.shape[-1], s.shape[-2])


def segment_samples(frames: int = SEGMENT_FRAMES) -> int:
    return (frames - 1) * F.HOP + F.N_FFT


def draw_batch(rng: np.random.Generator, stems: np.ndarray, batch: int, length: int) -> np.ndarray:
    """(batch, 6, 2, length) float32 stems drawn with remixing, gains, swaps and silences."""
    n_pieces, n_stems, _, n = stems.shape
    out = np.zeros((batch, n_stems, 2, length), dtype=np.float32)
    for b in range(batch):
        base = rng.integers(n_pieces)
        start = rng.integers(0, n - length)
        for s in range(n_stems):
            p, st = (base, start) if rng.random() > REMIX else (rng.integers(n_pieces), rng.integers(0, n - length))
            if rng.random() < 0.08:
                continue
            seg = stems[p, s, :, st:st + length].astype(np.float32) / 32768.0
            if rng.random() < 0.5:
                seg = seg[::-1]
            out[b, s] = seg * 10 ** (rng.uniform(-6, 3) / 20)
        peak = np.abs(out[b].sum(axis=0)).max()
        if peak > 1.0:
            out[b] /= peak
        out[b] *= 10 ** (rng.uniform(-12, 0) / 20)
    return out


def spectra(front: Frontend, stems: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, S, 2, samples) stems -> mixture magnitude (B, 2, T, K), its band pooling (B, 2, T,
    NB) and the stems' magnitudes (B, S, 2, T, K). Real arithmetic on the STFT's real and
    imaginary parts (what torch.compile can fuse)."""
    spec = torch.view_as_real(front.stft(stems))
    mix = spec.sum(dim=1)
    mix_mag = torch.sqrt(mix[..., 0] ** 2 + mix[..., 1] ** 2)
    return mix_mag, mix_mag @ front.pool, torch.sqrt(spec[..., 0] ** 2 + spec[..., 1] ** 2)


def masked_l1(front: Frontend, masks: torch.Tensor, mix_mag: torch.Tensor, stem_mag: torch.Tensor) -> torch.Tensor:
    """Band masks spread onto every bin, applied to the mixture magnitude, L1 to each stem's."""
    est = (masks @ front.expand) * mix_mag.unsqueeze(1)
    return (est - stem_mag).abs().mean() * 100.0


class Loss:
    """The training loss, its front end and tail compiled when asked and when they work."""

    def __init__(self, front: Frontend, compiled: bool, log=print):
        self.front, self.log = front, log
        self._eager()
        if compiled:
            # the STFT stays an eager complex op inside the compiled graph: said once per shape, not useful
            warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
            try:
                self.spectra, self.tail = torch.compile(self.spectra), torch.compile(self.tail)
                self.compiled = None  # checked on the first batch
            except Exception as exc:  # no compiler, no backend: eager is the same loss
                log(f"train: torch.compile unavailable ({type(exc).__name__}); the loss runs eagerly")

    def _eager(self):
        self.spectra = lambda stems: spectra(self.front, stems)
        self.tail = lambda masks, mm, sm: masked_l1(self.front, masks, mm, sm)
        self.compiled = False

    def __call__(self, net: SepNet, stems: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        if self.compiled is None:
            self._check(stems)
        with torch.no_grad():
            mix_mag, band, stem_mag = self.spectra(stems)
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                masks = net(band.contiguous(memory_format=torch.channels_last)).float()
        else:
            masks = net(band)  # (B, S, 2, T, NB)
        return self.tail(masks, mix_mag, stem_mag)

    def _check(self, stems):
        """The compiled functions against the eager ones on one batch; eager on any fault."""
        try:
            with torch.no_grad():
                got, want = self.spectra(stems), spectra(self.front, stems)
                masks = torch.softmax(torch.randn(stems.shape[0], stems.shape[1], 2, got[1].shape[2],
                                                  got[1].shape[3], generator=torch.Generator().manual_seed(0)), 1)
                ok = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(got, want)) and torch.allclose(
                    self.tail(masks, *got[::2]), masked_l1(self.front, masks, *want[::2]), rtol=1e-4)
            if not ok:
                raise RuntimeError("compiled loss differs from the eager one")
            self.compiled = True
            self.log("train: front end and loss compiled (torch.compile)")
        except Exception as exc:
            self.log(f"train: torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                     "the loss runs eagerly")
            self._eager()


def train(work_dir: str, cfg: TrainConfig, log=print) -> tuple[SepNet, dict]:
    """Train from scratch; returns (the best network, summary)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    train_set = D.load(work_dir, "train", mmap=False)
    val_set = D.load(work_dir, "test", mmap=False)
    if train_set.shape[0] == 0 or val_set.shape[0] == 0:
        raise RuntimeError("the separation data has no training or test pieces")
    length = segment_samples()
    vrng = np.random.default_rng(12345)
    val_batches = [torch.from_numpy(draw_batch(vrng, val_set, cfg.batch, length)) for _ in range(6)]
    net, front = SepNet(), Frontend()
    bf16 = bf16_supported() if cfg.bf16 is None else bool(cfg.bf16)
    if bf16:
        net = net.to(memory_format=torch.channels_last)
    log(f"train: separation net with {parameter_count(net)} parameters on {train_set.shape[0]} pieces; "
        f"budget {cfg.max_minutes:.0f} min{'; bfloat16 autocast' if bf16 else ''}")
    loss_fn = Loss(front, cfg.compile, log=log)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    t0 = time.time()
    budget = cfg.max_minutes * 60.0
    best, best_epoch, epoch = math.inf, -1, 0
    curves = []
    ckpt = os.path.join(work_dir, CHECKPOINT)
    while True:
        net.train()
        elapsed = time.time() - t0
        # cosine decay over the time budget
        lr = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(elapsed / budget, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        total = 0.0
        for _ in range(cfg.steps_per_epoch):
            batch = torch.from_numpy(draw_batch(rng, train_set, cfg.batch, length))
            loss = loss_fn(net, batch, bf16)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += float(loss.detach())
        net.eval()
        with torch.no_grad():
            val = float(np.mean([float(loss_fn(net, b, bf16)) for b in val_batches]))
        train_loss = total / cfg.steps_per_epoch
        curves.append({"epoch": epoch, "seconds": round(time.time() - t0, 1), "lr": lr,
                       "train_loss": round(train_loss, 5), "val_loss": round(val, 5)})
        if val < best:
            best, best_epoch = val, epoch
            torch.save(net.state_dict(), ckpt)
        log(f"train: epoch {epoch} train {train_loss:.4f} val {val:.4f} (best {best:.4f} at {best_epoch}) "
            f"{time.time() - t0:.0f} s")
        epoch += 1
        if time.time() - t0 > budget:
            break
    with open(os.path.join(work_dir, CURVES_FILE), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(curves[0]))
        w.writeheader()
        w.writerows(curves)
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    net = net.to(memory_format=torch.contiguous_format)
    net.eval()
    return net, {"epochs": epoch, "best_epoch": best_epoch, "best_val_loss": round(best, 5),
                 "parameters": parameter_count(net), "seconds": round(time.time() - t0, 1),
                 "segment_frames": SEGMENT_FRAMES, "batch": cfg.batch, "steps_per_epoch": cfg.steps_per_epoch,
                 "max_minutes": cfg.max_minutes, "bf16": bf16, "compiled": bool(loss_fn.compiled)}
