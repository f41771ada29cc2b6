"""What the synthetic profile's CLIP learns: the linear probe of its image encoder before and after training, and
how well the trained model retrieves what a query names, for the reference and for wrong losses.

Retrieval is judged by the generator's ground truth (what each validation image shows, `synthetic.named_attributes`
for what a query names): precision at 8, out of as many matches as the validation split holds; and by the share of
held-out images matched to their own caption (`retrieval.caption_matching`), which 7.2.2.6 grades. The wrong losses are
the corpus's mutants (tests/corpus/mutants_7_2.py): the reference with its loss changed in one place, as students
get it wrong. Run from the repository's root:

    PS7_CACHE=... TQDM_DISABLE=1 PYTHONPATH=. python bench/clip_retrieval.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from safetensors.torch import load_file

from autograder.assignment.namespace import reference_namespace
from autograder.data import synthetic
from autograder.grading import retrieval
from autograder.profiles.layout import PreparedPaths
from autograder.profiles.profile import load_profile
from autograder.training import runs
from autograder.training.probe import fit_and_score

# Shapes, colours with shapes, a background: every kind of thing a caption names.
QUERIES = (
    "a circle",
    "four dots",
    "a checkerboard",
    "a vertical bar",
    "a horizontal bar",
    "a red circle",
    "blue stripes",
    "four red dots",
    "a vertical blue bar",
    "four yellow dots",
    "a yellow checkerboard",
    "a white plus sign",
    "a yellow ring",
    "a green triangle",
)


# The wrong losses: mutants of the corpus (tests/corpus/mutants_7_2.py), the reference with one realistic bug each.
WRONG_LOSSES = ("temperature-multiplied", "one-direction-only", "targets-all-zero")


def _namespace(profile: str, loss: str):
    """The reference's namespace with the corpus mutant `loss` made in its code."""
    from tests.corpus.mutants_7_2 import MUTANTS

    [mutant] = [mutant for mutant in MUTANTS if mutant.name == loss]
    return reference_namespace(profile, mutant.replacements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="synthetic")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--queries", default=",".join(QUERIES), help="comma-separated queries to judge")
    parser.add_argument("--epochs", type=int, default=None, help="CLIP epochs (default: the profile's grading budget)")
    parser.add_argument("--losses", default=",".join(("reference", *WRONG_LOSSES)), help="reference, or mutant names")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    ns = reference_namespace(args.profile)
    data = runs.RunData.load(profile)
    paths = PreparedPaths(profile.cache_dir())
    pairs = json.loads(paths.clip_pairs.read_text())
    with tempfile.TemporaryDirectory() as folder:
        shown_by_name = synthetic.generate_flickr8k(
            folder, profile.data["seed"] + 1, profile.data["flickr8k"]["images"]
        )
    shown = [shown_by_name[name] for name, _ in pairs["val"]]
    labels = load_file(str(paths.stl10_labels))
    budgets = profile.grading_budgets
    epochs = args.epochs or budgets.clip_epochs
    dims = profile.backbones["image"]["embedding_dim"], profile.backbones["text"]["dim"]

    def probe(encoder) -> float:
        features = runs.image_encoder_features(ns, encoder, data)
        return fit_and_score(
            features["train"],
            labels["train"],
            features["test"],
            labels["test"],
            budgets.probe_epochs,
            profile.seed,
            budgets.batch_size,
        )

    untrained = probe(ns.ImageEncoder())
    print(
        f"profile {profile.name}: {len(data.clip_train)} training pairs, {epochs} CLIP epoch(s); "
        f"untrained image encoder's probe {untrained:.3f}"
    )
    for loss in args.losses.split(","):
        trained_ns = ns if loss == "reference" else _namespace(args.profile, loss)
        for seed in range(args.seeds):
            start = time.perf_counter()
            model, losses = runs.train_clip_model(trained_ns, data, epochs, seed, *dims)
            seconds = time.perf_counter() - start
            queries = tuple(args.queries.split(","))
            precision = retrieval.retrieval_precision(ns, model, data.clip_val, shown, queries, 8)
            matching = retrieval.caption_matching(ns, model, data.clip_val, data.clip_val_captions)
            print(
                json.dumps(
                    {
                        "loss": loss,
                        "seed": seed,
                        "probe": round(probe(model.image_encoder), 3),
                        "clip_seconds": round(seconds, 1),
                        "losses": [round(x, 3) for x in losses],
                        "caption_matching": round(matching, 3),
                        "mean_precision": round(sum(precision.values()) / len(precision), 3),
                        "precision": {query: round(value, 2) for query, value in precision.items()},
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
