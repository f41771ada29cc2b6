"""The linear probe, fitted in the trusted process on features the worker returned.

Same protocol as the notebook's `train_classifier(..., supervised=False)`: a linear layer, Adam (lr 1e-3,
weight decay 1e-4), cross-entropy, batches of the grading budgets' size (the notebook's: 128). Features are
fixed, so fitting on them once is equivalent to re-encoding every epoch, and much cheaper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int, batch_size: int = 128
) -> nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    features = features.flatten(start_dim=1).float()
    torch.manual_seed(seed)
    probe = nn.Linear(features.shape[1], int(labels.max()) + 1)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(probe(features[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return probe


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == labels).float().mean().item()


def fit_and_score(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int,
    seed: int,
    batch_size: int = 128,
) -> float:
    """Fit on the training features, score on the test features (whose labels never left this process)."""
    probe = fit_linear_probe(train, train_labels, epochs, seed, batch_size)
    with torch.no_grad():
        return accuracy(probe(test.flatten(start_dim=1).float()), test_labels)
