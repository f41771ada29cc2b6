"""How far correct training lowers the losses the contract tests measure (7.1.3.1, 7.1.4.1).

Those tests pass a run only when the loss on the images it trained on, computed in the trusted process from
the weights it sent, fell. This runs the reference's `train_ae` and `train_classifier` through the same probes
over many seeds (a grade draws one afresh) and prints the relative falls, so that a correct submission can be
seen never to fail them.

    PS7_CACHE=... TQDM_DISABLE=1 python bench/contract_margins.py --seeds 500
"""

from __future__ import annotations

import argparse
import secrets

import torch

from autograder.grading.reference import ReferenceRunner
from autograder.grading.trained import (
    autoencoder_architecture,
    classification_loss,
    classifier_architecture,
    initialised,
    reconstruction_error,
    trained_run,
)
from autograder.training.runs import random_images, random_labels


def _autoencoder_fall(runner: ReferenceRunner, seed: int) -> float:
    observation = runner.call("train_ae_contract", seed=seed, images=8, epochs=2)
    run = trained_run(observation, autoencoder_architecture(), torch.device("cpu"))
    initial = initialised(autoencoder_architecture, seed).parts["autoencoder"]
    images = random_images(8, seed)
    before = reconstruction_error(initial, images)
    return (before - reconstruction_error(run.part("autoencoder"), images)) / before


def _classifier_fall(runner: ReferenceRunner, seed: int, supervised: bool) -> float:
    arguments = {"supervised": supervised, "seed": seed, "images": 16, "batch_size": 8, "epochs": 2}
    observation = runner.call("train_classifier_one_epoch", **arguments)
    run = trained_run(observation, classifier_architecture(), torch.device("cpu"))
    initial = initialised(classifier_architecture, seed).parts
    inputs = random_images(16, seed), random_labels(16, seed)
    before = classification_loss(initial["encoder"], initial["classifier"], *inputs)
    return (before - classification_loss(run.part("encoder"), run.part("classifier"), *inputs)) / before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--profile", default="synthetic")
    options = parser.parse_args()
    runner = ReferenceRunner(options.profile)
    falls: dict[str, list[float]] = {"train_ae": [], "supervised=False": [], "supervised=True": []}
    for _ in range(options.seeds):
        seed = secrets.randbelow(2**31)
        falls["train_ae"].append(_autoencoder_fall(runner, seed))
        for supervised in (False, True):
            falls[f"supervised={supervised}"].append(_classifier_fall(runner, seed, supervised))
    for name, values in falls.items():
        values.sort()
        print(
            f"{name}: {len(values)} seeds; relative fall of the loss: smallest {values[0]:.5f}, median "
            f"{values[len(values) // 2]:.5f}, largest {values[-1]:.5f}; rose or stayed in {sum(v <= 0 for v in values)}"
        )


if __name__ == "__main__":
    main()
