"""What the synthetic profile's CLIP learns: the linear probe of its image encoder before and after training, and
how well the trained model retrieves what a query names, for the reference and for wrong losses.

Retrieval is judged by the generator's ground truth (what each validation image shows, `synthetic.named_attributes`
for what a query names): precision at 8, out of as many matches as the validation split holds. The wrong losses
are the reference's CLIPModel with its loss changed in one place, as students get it wrong.

    PS7_CACHE=... TQDM_DISABLE=1 python bench/clip_retrieval.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from autograder.assignment.namespace import reference_namespace
from autograder.data import synthetic
from autograder.profiles.layout import PreparedPaths
from autograder.profiles.profile import load_profile
from autograder.training import runs
from autograder.training.probe import fit_and_score

QUERIES = (
    "a circle",
    "four dots",
    "a checkerboard",
    "a vertical bar",
    "a red circle",
    "blue stripes",
    "a yellow ring",
    "a white plus sign",
)


def _logits_loss(logits: torch.Tensor, loss: str) -> torch.Tensor:
    targets = torch.arange(len(logits), device=logits.device)
    if loss == "targets all zero":
        targets = torch.zeros_like(targets)
    if loss == "images to captions only":
        return F.cross_entropy(logits, targets)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _with_loss(ns, loss: str):
    """ns with CLIPModel's loss replaced by `loss` (the reference's for "reference")."""
    if loss == "reference":
        return ns

    class WrongLoss(ns.CLIPModel):
        def forward(self, batch):
            image = self.image_projection(self.image_encoder(batch["image"]))
            text = self.text_projection(self.text_encoder(batch["input_ids"], batch["attention_mask"]))
            similarity = image @ text.T
            logits = similarity * self.temperature if loss == "logits × τ" else similarity / self.temperature
            return _logits_loss(logits, loss)

    copy = type(ns)(ns.__name__)
    copy.__dict__.update(ns.__dict__)
    copy.CLIPModel = WrongLoss
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="synthetic")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--queries", default=",".join(QUERIES), help="comma-separated queries to judge")
    parser.add_argument("--epochs", type=int, default=None, help="CLIP epochs (default: the profile's grading budget)")
    parser.add_argument("--losses", default="reference,logits × τ,images to captions only,targets all zero")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    ns = reference_namespace(args.profile)
    data = runs.RunData.load(profile)
    pairs = json.loads(PreparedPaths(profile.cache_dir()).clip_pairs.read_text())
    with tempfile.TemporaryDirectory() as folder:
        shown_by_name = synthetic.generate_flickr8k(
            folder, profile.data["seed"] + 1, profile.data["flickr8k"]["images"]
        )
    shown = [shown_by_name[name] for name, _ in pairs["val"]]
    labels = load_file(str(PreparedPaths(profile.cache_dir()).stl10_labels))
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
        for seed in range(args.seeds):
            start = time.perf_counter()
            model, losses = runs.train_clip_model(_with_loss(ns, loss), data, epochs, seed, *dims)
            seconds = time.perf_counter() - start
            precision = runs.retrieval_precision(ns, model, data.clip_val, shown, tuple(args.queries.split(",")), 8)
            matching = runs.caption_matching(ns, model, data.clip_val, [caption for _, caption in pairs["val"]])
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
