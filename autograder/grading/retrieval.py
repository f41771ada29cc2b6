"""What a trained CLIP retrieves, judged in the trusted process: the report's retrieval grids, held-out caption
matching (graded in 7.2.2.6) and, on the synthetic data, precision against the generator's ground truth.

Kept out of `training/runs.py`, which the student package ships for the public checks: ranking images by a query
is what 7.2.4 asks students to write.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from autograder.grading.trained import TrainedRun
from autograder.training.runs import RunData

RETRIEVED_PER_QUERY = 8


def _embedded(ns, model: nn.Module, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected embeddings of images and of texts (tokenised as the notebook does), in eval mode throughout: the
    notebook's `embed_images` leaves the model training, and the frozen DistilBERT's dropout would then make a query's
    embedding differ from one call to the next. The model's mode is restored."""
    was_training = model.training
    image_embeddings = ns.embed_images(model, images)
    model.eval()
    tokens = ns.TOKENIZER(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    text_embeddings = model.text_projection(
        model.text_encoder(
            input_ids=tokens["input_ids"].to(image_embeddings.device),
            attention_mask=tokens["attention_mask"].to(image_embeddings.device),
        )
    )
    model.train(was_training)
    return image_embeddings, text_embeddings


@torch.no_grad()
def retrieval_ranking(ns, model: nn.Module, images: torch.Tensor, queries: tuple[str, ...], k: int) -> torch.Tensor:
    """(len(queries), k) indices of the images a trained CLIP model ranks first for each query, best first, ranked
    as the problem statement says (the query's embedding against each image's)."""
    image_embeddings, query_embeddings = _embedded(ns, model, images, list(queries))
    return (query_embeddings @ image_embeddings.T).topk(min(k, len(images)), dim=1).indices.cpu()


@torch.no_grad()
def caption_matching(ns, model: nn.Module, images: torch.Tensor, captions: list[str], batch_size: int = 32) -> float:
    """The share of held-out images whose own caption a trained CLIP scores highest among the captions of its batch
    (`batch_size` consecutive pairs, as CLIP trains): what the loss asks of training, on pairs training never saw.
    A caption the same as the image's own counts as a match. Chance is about 1 / `batch_size`."""
    image_embeddings, text_embeddings = _embedded(ns, model, images, list(captions))
    matched = 0
    for start in range(0, len(images), batch_size):
        scores = image_embeddings[start : start + batch_size] @ text_embeddings[start : start + batch_size].T
        best = scores.argmax(dim=1).tolist()
        matched += sum(captions[start + j] == captions[start + i] for i, j in enumerate(best))
    return matched / len(images)


def retrieved_images(ns, model: nn.Module, images: torch.Tensor, queries: tuple[str, ...]) -> torch.Tensor:
    """The RETRIEVED_PER_QUERY images ranked first for each query, query after query; uint8, for the report."""
    return images[retrieval_ranking(ns, model, images, queries, RETRIEVED_PER_QUERY).flatten()]


def retrieval_precision(
    ns, model: nn.Module, images: torch.Tensor, shown: list[dict[str, str]], queries: tuple[str, ...], k: int
) -> dict[str, float]:
    """For each query, the share of the k images ranked first that show what it names (`shown[i]`: what image i
    shows), out of as many as can: min(k, the images that match). For the synthetic data, whose generator knows
    what each image shows (`synthetic.named_attributes` reads a query)."""
    from autograder.data.synthetic import named_attributes

    ranking = retrieval_ranking(ns, model, images, queries, k)
    precision = {}
    for query, best in zip(queries, ranking.tolist(), strict=True):
        named = named_attributes(query)
        if named is None:
            raise ValueError(f"query {query!r} is not in the synthetic captions' words: nothing can judge it")
        matches = [all(shown[i][key] == value for key, value in named.items()) for i in range(len(shown))]
        if not any(matches):
            raise ValueError(f"no image shows {query!r}: choose a query the images hold")
        precision[query] = sum(matches[i] for i in best) / min(k, sum(matches))
    return precision


class _TrainedClip(nn.Module):
    """What `retrieved_images` needs of a trained CLIP: the trained image side and text head, and this
    process's own frozen text encoder."""

    def __init__(self, ns: types.SimpleNamespace, run: TrainedRun) -> None:
        super().__init__()
        self.image_encoder = run.part("image_encoder")
        self.image_projection = run.part("image_projection")
        self.text_projection = run.part("text_projection")
        self.text_encoder = ns.TextEncoder().to(ns.DEVICE)


def clip_caption_matching(ns: types.SimpleNamespace, run: TrainedRun, data: RunData) -> float:
    """The share of held-out images the trained CLIP matches to their own caption (`caption_matching`)."""
    return caption_matching(ns, _TrainedClip(ns, run), data.clip_val, data.clip_val_captions)


def clip_retrievals(
    ns: types.SimpleNamespace, run: TrainedRun, data: RunData, queries: tuple[str, ...]
) -> torch.Tensor | None:
    """The validation images the trained CLIP ranks first for each query, for the report (None when they
    cannot be drawn: a figure decides nothing)."""
    try:
        return retrieved_images(ns, _TrainedClip(ns, run), data.clip_val, queries)
    except Exception:  # noqa: BLE001 - a figure of the report only
        return None
