"""The trusted linear probe: learns what is linearly there, and nothing when nothing is."""

import pytest
import torch

from autograder.training.probe import accuracy, fit_and_score


def features(count: int, informative: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (count,), generator=generator)
    noise = torch.randn(count, 4, 3, 3, generator=generator)  # feature maps, flattened by the probe
    if informative:
        noise.view(count, -1)[torch.arange(count), labels] += 10.0  # one feature per class carries the label
    return noise, labels


def test_probe_finds_linearly_separable_classes():
    train, train_labels = features(600, True, 0)
    test, test_labels = features(300, True, 1)
    assert fit_and_score(train, train_labels, test, test_labels, epochs=30, seed=0) > 0.9


def test_probe_is_at_chance_without_signal():
    train, train_labels = features(600, False, 0)
    test, test_labels = features(300, False, 1)
    assert fit_and_score(train, train_labels, test, test_labels, epochs=30, seed=0) < 0.25


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
