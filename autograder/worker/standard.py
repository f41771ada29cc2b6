"""The parts of the assignment whose specification the problem statement gives in full, built from it.

Component isolation: a component is graded next to correct versions of the others (the student's
`train_ae` trains this autoencoder, the student's `CLIPModel` gets these projection heads). The student's
process never holds the reference solution, so these are built from the published specification (the
layer table of 7.1.1/7.1.2, "one Linear layer, L2-normalised" of 7.2.1). tests/worker/test_standard.py
proves they compute exactly what the reference computes under the same weights, and that their
parameters are created in the same order, so the same seed gives the same initial weights.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_CHANNELS = (12, 24, 48, 24)
DECODER_CHANNELS = (48, 24, 12)
CONV = {"kernel_size": 4, "stride": 2, "padding": 1}


class StandardEncoder(nn.Module):
    """Four Conv2d 3 → 12 → 24 → 48 → 24 (kernel 4, stride 2, padding 1), a ReLU after each."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        channels = (in_channels, *ENCODER_CHANNELS)
        self.convolutions = nn.ModuleList(nn.Conv2d(a, b, **CONV) for a, b in pairwise(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for convolution in self.convolutions:
            x = F.relu(convolution(x))
        return x


class StandardDecoder(nn.Module):
    """Four ConvTranspose2d 24 → 48 → 24 → 12 → 3, ReLU between, Sigmoid at the end."""

    def __init__(self, out_channels: int = 3, feat_dim: int = 64) -> None:
        super().__init__()
        channels = (ENCODER_CHANNELS[-1], *DECODER_CHANNELS, out_channels)
        self.convolutions = nn.ModuleList(nn.ConvTranspose2d(a, b, **CONV) for a, b in pairwise(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for convolution in self.convolutions[:-1]:
            x = F.relu(convolution(x))
        return torch.sigmoid(self.convolutions[-1](x))


class StandardAutoencoder(nn.Module):
    """The provided `Autoencoder` around the standard encoder and decoder."""

    def __init__(self, in_channels: int = 3, feat_dim: int = 64) -> None:
        super().__init__()
        self.encoder = StandardEncoder(in_channels)
        self.decoder = StandardDecoder(in_channels, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class StandardProjectionHead(nn.Module):
    """One Linear layer whose outputs are L2-normalised rows."""

    def __init__(self, embedding_dim: int, projection_dim: int = 256) -> None:
        super().__init__()
        self.projection = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(x), dim=-1)
