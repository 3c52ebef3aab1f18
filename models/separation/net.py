"""The separation network (torch): a small mask U-Net on pooled STFT magnitudes.

Input ``band_mag`` (B, 2, T, 128): the magnitudes of the left and right channels pooled
into features.N_BANDS bands (T a multiple of 8). Output ``masks`` (B, S, 2, T, 128): one
mask per stem, channel, frame and band, a softmax over the S stems, so they sum to one
(features.expand spreads them onto every bin). The U-Net halves frequency at every level
and time at the lower two; the bottleneck has dilated convolutions along time for about
a second of context each way.
"""

import torch
from torch import nn

from . import features as F

WIDTHS = (24, 40, 64, 96)


def _block(cin, cout, dil=(1, 1)):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dil, dilation=dil), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SepNet(nn.Module):
    def __init__(self, n_stems: int = len(F.STEMS6), widths=WIDTHS):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.n_stems = n_stems
        self.enc0 = nn.Sequential(_block(2, w0), _block(w0, w0))
        self.down1 = nn.Sequential(nn.Conv2d(w0, w1, (1, 2), stride=(1, 2)), nn.BatchNorm2d(w1), nn.ReLU(inplace=True))
        self.enc1 = _block(w1, w1)
        self.down2 = nn.Sequential(nn.Conv2d(w1, w2, 2, stride=2), nn.BatchNorm2d(w2), nn.ReLU(inplace=True))
        self.enc2 = _block(w2, w2)
        self.down3 = nn.Sequential(nn.Conv2d(w2, w3, 2, stride=2), nn.BatchNorm2d(w3), nn.ReLU(inplace=True))
        self.mid = nn.ModuleList([_block(w3, w3, (d, 1)) for d in (1, 2, 4, 8)])
        self.up3 = nn.Sequential(nn.ConvTranspose2d(w3, w2, 2, stride=2), nn.BatchNorm2d(w2), nn.ReLU(inplace=True))
        self.dec2 = _block(2 * w2, w2)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(w2, w1, 2, stride=2), nn.BatchNorm2d(w1), nn.ReLU(inplace=True))
        self.dec1 = _block(2 * w1, w1)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(w1, w0, (1, 2), stride=(1, 2)), nn.BatchNorm2d(w0),
                                 nn.ReLU(inplace=True))
        self.dec0 = _block(2 * w0, w0)
        self.head = nn.Conv2d(w0, n_stems * 2, 1)

    def forward(self, band_mag: torch.Tensor) -> torch.Tensor:
        b, _, t, f = band_mag.shape
        x = (torch.log(band_mag + 1e-5) + 4.0) / 4.0
        e0 = self.enc0(x)
        e1 = self.enc1(self.down1(e0))
        e2 = self.enc2(self.down2(e1))
        m = self.down3(e2)
        for layer in self.mid:
            m = m + layer(m)
        d2 = self.dec2(torch.cat([self.up3(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up2(d2), e1], dim=1))
        d0 = self.dec0(torch.cat([self.up1(d1), e0], dim=1))
        logits = self.head(d0).reshape(b, self.n_stems, 2, t, f)
        return torch.softmax(logits, dim=1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
