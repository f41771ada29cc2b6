"""What a trained CLIP retrieves, judged in the trusted process: the report's retrieval grids, held-out caption
matching (graded in 7.2.2.6) and, on the synthetic data, precision against the generator's ground truth.

Kept out of `training/runs.py`, which the student package ships for the public checks: ranking images by a query
is what 7.2.4 asks students to write.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn

from autograder.grading.trained import TrainedRun
from autograder.training.runs import RunData

RETRIEVED_PER_QUERY = 8


@contextlib.contextmanager
def _mode_kept(model: nn.Module) -> Iterator[None]:
    """Restore the model's training mode afterwards: the notebook's `embed_images` leaves it training."""
    was_training = model.training
    try:
        yield
    finally:
        model.train(was_training)


def _text_embeddings(ns, model: nn.Module, texts: list[str], device: torch.device) -> torch.Tensor:
    """Projected embeddings of texts, tokenised as the notebook does, in eval mode: in training mode the frozen
    DistilBERT's dropout would make a query's embedding differ from one call to the next. Tokenised apart from any
    other texts, so that captions whose features were cached at `prepare` time are served from the cache."""
    model.eval()
    tokens = ns.TOKENIZER(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    return model.text_projection(
        model.text_encoder(
            input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
        )
    )


def _ranked(query_embeddings: torch.Tensor, image_embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """(queries, k) indices of the images ranked first for each query, best first, ranked as the problem statement
    says (the query's embedding against each image's)."""
    return (query_embeddings @ image_embeddings.T).topk(min(k, len(image_embeddings)), dim=1).indices.cpu()


def _matched(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, captions: list[str], batch_size: int
) -> float:
    """The share of images whose own caption scores highest among the captions of its batch (`caption_matching`)."""
    matched = 0
    for start in range(0, len(image_embeddings), batch_size):
        scores = image_embeddings[start : start + batch_size] @ text_embeddings[start : start + batch_size].T
        best = scores.argmax(dim=1).tolist()
        matched += sum(captions[start + j] == captions[start + i] for i, j in enumerate(best))
    return matched / len(image_embeddings)


@torch.no_grad()
def retrieval_ranking(ns, model: nn.Module, images: torch.Tensor, queries: tuple[str, ...], k: int) -> torch.Tensor:
    """(len(queries), k) indices of the images a trained CLIP model ranks first for each query, best first."""
    with _mode_kept(model):
        image_embeddings = ns.embed_images(model, images)
        return _ranked(_text_embeddings(ns, model, list(queries), image_embeddings.device), image_embeddings, k)


@torch.no_grad()
def caption_matching(ns, model: nn.Module, images: torch.Tensor, captions: list[str], batch_size: int = 32) -> float:
    """The share of held-out images whose own caption a trained CLIP scores highest among the captions of its batch
    (`batch_size` consecutive pairs, as CLIP trains): what the loss asks of training, on pairs training never saw.
    A caption the same as the image's own counts as a match. Chance is about 1 / `batch_size`."""
    with _mode_kept(model):
        image_embeddings = ns.embed_images(model, images)
        text_embeddings = _text_embeddings(ns, model, list(captions), image_embeddings.device)
    return _matched(image_embeddings, text_embeddings, list(captions), batch_size)


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
    """What `clip_validation` needs of a trained CLIP: the trained image side and text head, and this process's own
    frozen text encoder."""

    def __init__(self, ns: types.SimpleNamespace, run: TrainedRun) -> None:
        super().__init__()
        self.image_encoder = run.part("image_encoder")
        self.image_projection = run.part("image_projection")
        self.text_projection = run.part("text_projection")
        self.text_encoder = ns.TextEncoder().to(ns.DEVICE)


@torch.no_grad()
def clip_validation(
    ns: types.SimpleNamespace, run: TrainedRun, data: RunData, queries: tuple[str, ...]
) -> tuple[float, torch.Tensor | None]:
    """The trained CLIP on the validation split, its images embedded once: the share it matches to their own caption
    (`caption_matching`, graded), and the RETRIEVED_PER_QUERY images it ranks first for each query, query after
    query, for the report (None when there are no queries or they cannot be drawn: a figure decides nothing)."""
    model = _TrainedClip(ns, run)
    captions = data.clip_val_captions
    image_embeddings = ns.embed_images(model, data.clip_val)
    caption_embeddings = _text_embeddings(ns, model, captions, image_embeddings.device)
    matching = _matched(image_embeddings, caption_embeddings, captions, ns.CLIP_CONFIG["batch_size"])
    retrieved = None
    if queries:
        try:
            query_embeddings = _text_embeddings(ns, model, list(queries), image_embeddings.device)
            retrieved = data.clip_val[_ranked(query_embeddings, image_embeddings, RETRIEVED_PER_QUERY).flatten()]
        except Exception:  # noqa: BLE001 - a figure of the report only
            pass
    return matching, retrieved
