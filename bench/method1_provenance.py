"""How closely Method I's trained weights stay tied to the initialisation they started from (7.1.3.3).

7.1.3.3 judges the autoencoder a run sends back. A run that sends an untrained network of some other seed (a
forger may try many, since the worker holds the training labels) must not pass; a correct run, which starts
from the network the grader draws again from the profile's seed, must. This trains the reference's `train_ae`
through the worker's probe for several seeds and prints, for its encoder, its `kinship` (cosine similarity of
the weights in units of its chance spread) with its own initialisation and with independent initialisations, and
the reconstruction error on test images before and after training, from which 7.1.3.3's bounds are read off.

    PS7_CACHE=... TQDM_DISABLE=1 python bench/method1_provenance.py --seeds 5
"""

from __future__ import annotations

import argparse
import statistics

import torch

from autograder.grading.reference import ReferenceRunner
from autograder.grading.trained import (
    autoencoder_architecture,
    initialised,
    kinship,
    reconstruction_error,
    trained_run,
)
from autograder.profiles.profile import load_profile
from autograder.training.runs import RunData


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strangers", type=int, default=50, help="independent initialisations per seed")
    parser.add_argument("--images", type=int, default=256, help="test images reconstructed (7.1.3.3's number)")
    parser.add_argument("--profile", default="synthetic")
    options = parser.parse_args()
    profile = load_profile(options.profile)
    budgets = profile.grading_budgets
    runner = ReferenceRunner(options.profile)
    test_images = RunData.load(profile).test[: options.images]
    own, strangers, falls, stranger_errors = [], [], [], []
    for seed in range(options.seeds):
        arguments = {"epochs": budgets.ae_epochs, "seed": seed, "batch_size": budgets.batch_size}
        run = trained_run(runner.call("method1_weights", **arguments), autoencoder_architecture(), torch.device("cpu"))
        trained = run.part("autoencoder")
        initial = initialised(autoencoder_architecture, seed).parts["autoencoder"]
        own.append(kinship(trained.encoder, initial.encoder))
        before, after = reconstruction_error(initial, test_images), reconstruction_error(trained, test_images)
        falls.append(after / before)
        for other in range(10_000 + 100 * seed, 10_000 + 100 * seed + options.strangers):
            stranger = initialised(autoencoder_architecture, other).parts["autoencoder"]
            strangers.append(kinship(stranger.encoder, initial.encoder))
            stranger_errors.append(reconstruction_error(stranger, test_images) / before)
        print(
            f"seed {seed}: kinship with its initialisation {own[-1]:.1f}; test reconstruction error "
            f"{before:.4f} -> {after:.4f} (ratio {falls[-1]:.3f})",
            flush=True,
        )
    print(f"trained runs: kinship min {min(own):.1f}, error ratio max {max(falls):.3f}")
    print(
        f"independent initialisations ({len(strangers)}): kinship max {max(strangers):.2f} "
        f"(mean {statistics.fmean(strangers):.2f}); error ratio min {min(stranger_errors):.3f}"
    )


if __name__ == "__main__":
    main()
