"""7.2.4 retrieve_images (1 point): the k best filenames, best first, on fixed embeddings; no Python loops
over the images, judged by the lines that run more often with more images (`autograder.grading.loops`).

The model is a stub whose text encoder returns known features and whose text projection is a standard
head with known weights, so the query embedding, and with it the expected ranking, is computed here.
"""

import pytest
import torch
import torch.nn.functional as F

from autograder.grading.loops import loop_verdict
from autograder.worker.protocol import encode_tensors

QUERY = "a dog running on the grass"
TEXT_DIM = 16
EMBEDDING_DIM = 8
MIN_SCORE_GAP = 1e-3  # scores this far apart rank the same whatever the order of floating-point operations
SHOWN = 5
LOOP_SIZES = (8, 512)  # images; a loop over them runs 504 times more at the second size, fixed parts as often
LOOP_K = 3

pytestmark = pytest.mark.tags("7.2", "clip")


def _retrieval_inputs(seed: int, images: int) -> tuple[dict[str, torch.Tensor], list[str], list[int]]:
    """Normalised image embeddings, the query's features and projection, made-up filenames, and the image
    indices from best to worst; drawn again until no two scores are close."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        tensors = {
            "image_embeddings": F.normalize(torch.randn(images, EMBEDDING_DIM, generator=generator), dim=-1),
            "text_features": torch.randn(1, TEXT_DIM, generator=generator),
            "weight": torch.randn(EMBEDDING_DIM, TEXT_DIM, generator=generator) * 0.3,
            "bias": torch.randn(EMBEDDING_DIM, generator=generator) * 0.3,
        }
        query = F.normalize(tensors["text_features"] @ tensors["weight"].T + tensors["bias"], dim=-1)
        scores = (tensors["image_embeddings"] @ query.T).squeeze(1)
        ranked = torch.sort(scores, descending=True)
        if bool((ranked.values[:-1] - ranked.values[1:] >= MIN_SCORE_GAP).all()):
            break
    names = torch.randint(16**6, 16**7, (images,), generator=generator).tolist()
    filenames = [f"{name:x}_{index}.jpg" for index, name in enumerate(names)]
    return tensors, filenames, ranked.indices.tolist()


def _observe_retrieval(observe, seed: int, images: int, k: int) -> tuple[dict, list[str], list[int]]:
    tensors, filenames, order = _retrieval_inputs(seed, images)
    observed = observe("retrieve", tensors=encode_tensors(tensors), query=QUERY, filenames=filenames, k=k).data
    return observed, filenames, order


def _shown(items: list) -> str:
    text = ", ".join(repr(item) for item in items[:SHOWN])
    return f"[{text}{', ...' if len(items) > SHOWN else ''}]"


def _likely(items: list, filenames: list[str], order: list[int], k: int) -> str:
    """What a wrong answer probably is, from the known ranking."""
    best = [filenames[i] for i in order[:k]]
    if sorted(items) == sorted(best):
        if items == best[::-1]:
            return "the k best filenames in ascending order: sort by descending score, best first"
        return "the right filenames in the wrong order: the best match comes first"
    if items == [filenames[i] for i in order[::-1][:k]]:
        return "the k worst matches: sort by descending score (largest=True / descending=True), not ascending"
    if items == [filenames[i] for i in order[1 : k + 1]]:
        return "the best match is skipped (an off-by-one in the slice)"
    return "not the k images whose embeddings have the largest dot product with the query's embedding"


def _check(observed: dict, filenames: list[str], order: list[int], k: int) -> None:
    items = observed["items"]
    call = f"retrieve_images(model, image_embeddings, query, image_filenames, k={k}) with {len(filenames)} images"
    assert items is not None, (
        f"expected {call} to return a sequence of filenames (a list, tuple, NumPy array or pandas Series); "
        f"observed a {observed['type']}"
    )
    if any(isinstance(item, int) for item in items):
        pytest.fail(
            f"expected {call} to return filenames (strings); observed {_shown(items)}: indices instead of "
            "filenames (look them up in image_filenames)",
            pytrace=False,
        )
    assert all(isinstance(item, str) for item in items), (
        f"expected {call} to return filenames (strings); observed items {_shown(items)}"
    )
    if len(items) != k:
        off_by_one = " (an off-by-one in k?)" if abs(len(items) - k) == 1 else ""
        pytest.fail(
            f"expected {call} to return {k} filename{'s' if k != 1 else ''}; observed {len(items)}{off_by_one}: "
            f"{_shown(items)}",
            pytrace=False,
        )
    best = [filenames[i] for i in order[:k]]
    if items != best:
        pytest.fail(
            f"expected {call} to return the best matches first: {_shown(best)}; observed {_shown(items)}: "
            f"{_likely(items, filenames, order, k)}"
            + ("" if observed["text_encoder_calls"] else " (the query was never given to model.text_encoder)"),
            pytrace=False,
        )


@pytest.mark.points(0.3)
@pytest.mark.number("7.2.4.1")
def test_retrieve_returns_the_best_filenames(observe):
    """7.2.4 retrieve_images: returns a list of the k best filenames, best first"""
    observed, filenames, order = _observe_retrieval(observe, seed=0, images=12, k=3)
    _check(observed, filenames, order, k=3)


@pytest.mark.points(0.5)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.2.4.2")
def test_retrieve_ranks_for_k_1_9_and_all(observe, run_seed):
    """7.2.4 retrieve_images: the k best filenames in order for k = 1, 9 and all"""
    images = 40
    for offset, k in enumerate((1, 9, images)):
        observed, filenames, order = _observe_retrieval(observe, seed=run_seed + offset, images=images, k=k)
        _check(observed, filenames, order, k)


@pytest.mark.points(0.2)
@pytest.mark.number("7.2.4.3")
def test_retrieve_has_no_python_loops(observe, submission):
    """7.2.4 retrieve_images: scores and ranks the images without Python loops"""
    observed, filenames, order = _observe_retrieval(observe, seed=1, images=10, k=2)
    _check(observed, filenames, order, k=2)
    calls = observe(
        "retrieve_line_counts", sizes=list(LOOP_SIZES), k=LOOP_K, query=QUERY, embedding_dim=EMBEDDING_DIM,
        text_dim=TEXT_DIM,
    ).data["calls"]
    problem = loop_verdict(
        calls,
        "retrieve_images",
        submission,
        sizes=LOOP_SIZES,
        items="images",
        expected="retrieve_images to work on whole tensors, without a Python loop over the images",
        larger=f"with more images (k = {LOOP_K} both times)",
        advice="One matrix product scores every image; torch.topk or argsort ranks them; indexing a NumPy array of "
        "the filenames with the best indices picks the names (a loop or comprehension over the k results or the "
        "tokenizer's outputs is fine)",
    )
    if problem:
        pytest.fail(problem, pytrace=False)
