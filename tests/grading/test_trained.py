"""Training tests judged from weights: a real sandboxed worker trains the standard autoencoder with a notebook's
`train_ae` and sends back its weights only; the trusted side refuses anything but exactly the weights of its own
architecture, and computes features from them that are those of the reference's training run.

The notebook's `train_ae` chooses what it does by its `epochs` argument, so that one worker serves every case:
1 trains honestly; 2 returns NaN weights; 3 adds a tensor the architecture does not have; 4 widens the first
convolution; 5 returns the features of a model the grader did not define (a string instead of the model). Its
Encoder looks for the standard parts, which a worker observing the student's own parts never holds.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.assignment.namespace import reference_namespace
from autograder.grading.trained import (
    SHOWN_RECONSTRUCTIONS,
    Architecture,
    WeightsRefused,
    autoencoder_architecture,
    autoencoder_features,
    classifier_architecture,
    initialised,
    kinship,
    largest_change,
    reconstruction_error,
    trained_run,
)
from autograder.ingest import ingest
from autograder.training import runs
from autograder.worker.client import Worker
from autograder.worker.protocol import Observation, encode_tensors, observation_from_response
from autograder.worker.standard import StandardAutoencoder, StandardEncoder

SEED = 5
BATCH = 64

TRAIN_AE = """
import torch
import torch.nn as nn
import torch.nn.functional as F


def train_ae(model, dataloader, epochs=100):
    if epochs == 2:
        with torch.no_grad():
            model.encoder.convolutions[0].weight.fill_(float("nan"))
        return model, [1.0, 1.0]
    if epochs == 3:
        model.register_buffer("smuggled", torch.zeros(4))
        return model, [1.0] * 3
    if epochs == 4:
        model.encoder.convolutions[0] = nn.Conv2d(3, 64, 4, 2, 1)
        return model, [1.0] * 4
    if epochs == 5:
        return "features of a pretrained backbone", [1.0] * 5
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for images, _ in dataloader:
            optimizer.zero_grad()
            loss = F.mse_loss(model(images), images)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(dataloader))
    return model, losses


class Encoder(nn.Module):
    # looks for the grader's standard encoder: through an import, and where the probes keep it

    def __init__(self, in_channels=3):
        super().__init__()
        import importlib
        import sys

        try:
            found = getattr(importlib.import_module("autograder.worker.standard"), "StandardEncoder", None)
        except (ImportError, OSError):
            found = None
        found = found or sys.modules["autograder.worker.probes.base"]._STANDARD.get("module")
        raise RuntimeError("STANDARD-REACHED" if found is not None else "STANDARD-UNREACHABLE")
"""


@pytest.fixture(scope="module")
def worker(synthetic_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("trained") / "ps7.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(TRAIN_AE)]
    nbformat.write(notebook, path)
    with pytest.MonkeyPatch.context() as patch:  # every (re)start of the worker reads the prepared profile
        patch.setenv("PS7_CACHE", str(synthetic_cache))
        worker = Worker(ingest(path), call_timeout=300)
        yield worker
        worker.close()


@pytest.fixture(scope="module")
def reference_ns(synthetic_cache: Path) -> types.SimpleNamespace:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PS7_CACHE", str(synthetic_cache))
        return types.SimpleNamespace(**reference_namespace("synthetic").__dict__)


def _method1(worker: Worker, epochs: int, ns: types.SimpleNamespace):
    architecture = autoencoder_architecture()
    observation = worker.call(
        "method1_weights", expect=architecture.specs(), epochs=epochs, seed=SEED, batch_size=BATCH
    )
    return trained_run(observation, architecture, ns.DEVICE)


def test_features_come_from_the_weights_and_equal_the_reference_runs(worker, reference_ns, synthetic):
    run = _method1(worker, 1, reference_ns)
    assert run.ok, run.error
    assert set(run.observation.tensors) == set(autoencoder_architecture().specs())
    assert len(run.losses) == 1 and math.isfinite(run.losses[0])
    data = runs.RunData.load(synthetic)
    evaluated = autoencoder_features(reference_ns, run, data)
    reference = types.SimpleNamespace(**{**vars(reference_ns), "Autoencoder": StandardAutoencoder})
    expected = runs.autoencoder_features(reference, data, 1, SEED, BATCH)
    assert evaluated["train"].shape == expected["train"].shape == (len(data.train), 24 * 4 * 4)
    assert torch.allclose(evaluated["train"], expected["train"], atol=1e-4)
    assert torch.allclose(evaluated["test"], expected["test"], atol=1e-4)
    assert evaluated["reconstructions"].shape == (SHOWN_RECONSTRUCTIONS, 3, 64, 64)
    untrained = runs.encoder_features(reference_ns, StandardAutoencoder().encoder, data)
    assert not torch.allclose(evaluated["test"], untrained["test"], atol=1e-3), "the weights were not loaded"


@pytest.mark.parametrize(
    ("epochs", "refusal"),
    [
        (2, "not finite"),
        (3, "does not have ('autoencoder.smuggled')"),
        (4, "'autoencoder.encoder.convolutions.0."),  # its weight or bias, whichever the header lists first
        (5, "should return model first; it returned a str"),
    ],
)
def test_anything_but_the_architectures_weights_is_refused(worker, reference_ns, epochs, refusal):
    run = _method1(worker, epochs, reference_ns)
    assert not run.ok and refusal in run.error, run.error


def _observation(tensors: dict[str, torch.Tensor], architecture: Architecture) -> Observation:
    """An answer as it comes off the wire, checked against the architecture's specs."""
    message = {"id": 0, "ok": True, "data": {"losses": [1.0]}, "tensors": encode_tensors(tensors)}
    return observation_from_response(message, expect=architecture.specs())


def test_method3s_encoder_is_compared_with_the_initialisation_drawn_here():
    torch.manual_seed(SEED)
    encoder = StandardEncoder()
    weights = {f"encoder.{key}": value for key, value in encoder.state_dict().items()}
    weights.update({"classifier.weight": torch.zeros(10, 384), "classifier.bias": torch.zeros(10)})
    architecture = classifier_architecture()
    run = trained_run(_observation(weights, architecture), architecture, torch.device("cpu"))
    assert run.ok and largest_change(run, initialised(classifier_architecture, SEED), "encoder") == 0
    weights["encoder.convolutions.3.bias"] = weights["encoder.convolutions.3.bias"] + 0.5
    architecture = classifier_architecture()
    run = trained_run(_observation(weights, architecture), architecture, torch.device("cpu"))
    assert largest_change(run, initialised(classifier_architecture, SEED), "encoder") == pytest.approx(0.5)


def test_kinship_tells_a_trained_encoder_from_independent_initialisations():
    """7.1.3.3 requires a kinship of 6 with the run's own initialisation: a few Adam steps keep it
    far above, and no independent draw comes near (they score about N(0, 1))."""
    initial = initialised(autoencoder_architecture, SEED).parts["autoencoder"]
    model = initialised(autoencoder_architecture, SEED).parts["autoencoder"]
    images = runs.random_images(16, SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        pixels = images.float() / 255
        torch.nn.functional.mse_loss(model(pixels), pixels).backward()
        optimizer.step()
    assert reconstruction_error(model, images) < reconstruction_error(initial, images)
    assert kinship(initial.encoder, initial.encoder) == pytest.approx(math.sqrt(3 * 12 * 16), rel=1e-5)
    assert 6 < kinship(model.encoder, initial.encoder) < kinship(initial.encoder, initial.encoder)
    strangers = [
        kinship(initialised(autoencoder_architecture, seed).parts["autoencoder"].encoder, initial.encoder)
        for seed in range(100, 140)
    ]
    assert max(abs(value) for value in strangers) < 6


def test_weights_of_another_dtype_are_refused_before_they_are_decoded():
    architecture = classifier_architecture()
    weights = {name: torch.zeros(spec.shape, dtype=torch.float64) for name, spec in architecture.specs().items()}
    with pytest.raises(ValueError, match="dtype F64, expected one of F32"):
        _observation(weights, architecture)


def test_load_refuses_what_the_specs_do_not_name():
    architecture = classifier_architecture()
    weights = {name: torch.zeros(spec.shape) for name, spec in architecture.specs().items()}
    with pytest.raises(WeightsRefused, match="'features'"):
        architecture.load({**weights, "features": torch.zeros(3, 384)})


def test_the_students_own_parts_are_observed_where_the_standard_parts_never_were(worker, reference_ns):
    assert _method1(worker, 5, reference_ns).observation.ok is False  # this worker now holds the standard parts
    starts = worker.starts
    observation = worker.call("encoder_structure")
    assert not observation.ok and "STANDARD-UNREACHABLE" in observation.message, observation.message
    assert worker.starts == starts + 1, "the Encoder must be observed by a fresh worker"
    assert not worker.call("train_ae_contract", epochs=5).ok  # the standard parts are given again when needed
    assert worker.starts == starts + 1
