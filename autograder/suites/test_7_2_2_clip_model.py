"""7.2.2 CLIPModel (2 points): the model built in `__init__`, the symmetric InfoNCE loss on fixed features fed
through stub encoders, gradients, no Python loops, and the linear-probe accuracy after training.

The student's CLIPModel always gets the standard projection heads (component isolation); the expected
loss is recomputed here, in the trusted process, from the features and head weights sent to the probe. The
training run sends back the trained image encoder's and heads' weights; the features are computed here.
"""

import functools
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from autograder.grading.loops import loop_verdict
from autograder.grading.retrieval import clip_validation
from autograder.grading.trained import TrainedRun, clip_architecture, clip_features
from autograder.profiles.timing import training_call_seconds
from autograder.worker.protocol import encode_tensors

TEMPERATURE = 0.07
STRUCTURE_TEMPERATURE = 0.05  # not the default, so that a hard-coded 0.07 shows
PROJECTION_DIM = 256
LOSS_BATCHES = {0.07: (1, 2, 7, 32), 0.5: (3, 16)}
LOOP_BATCHES = (4, 64)  # a loop over the pairs runs 60 times more in the second batch, fixed parts as often
RELATIVE_TOLERANCE = 1e-4
ABSOLUTE_TOLERANCE = 1e-4
TRAINING_TIMEOUT = 1800.0  # seconds: the profile's CLIP budget on a slow grading machine
EXPECTED = "expected"
MULTIPLIED = "the logits are multiplied by the temperature instead of divided by it"
ROWS_ONLY = (
    "only one direction of the loss, images → captions (the rows of the logits); average it with the captions → "
    "images direction (the columns)"
)
COLUMNS_ONLY = (
    "only one direction of the loss, captions → images (the columns of the logits); average it with the images → "
    "captions direction (the rows)"
)
WRONG_TARGETS = "wrong targets: the i-th image belongs with the i-th caption, so the targets are torch.arange(N)"

pytestmark = pytest.mark.tags("7.2", "clip")


def _dims(profile) -> tuple[int, int]:
    return profile.backbones["image"]["embedding_dim"], profile.backbones["text"]["dim"]


def _loss_inputs(seed: int, sizes: tuple[int, ...], image_dim: int, text_dim: int) -> dict[str, torch.Tensor]:
    """Head weights drawn like nn.Linear's defaults and, per batch, image and caption features."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape: int, fan_in: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1) / math.sqrt(fan_in)

    tensors = {
        "image_head.weight": uniform(PROJECTION_DIM, image_dim, fan_in=image_dim),
        "image_head.bias": uniform(PROJECTION_DIM, fan_in=image_dim),
        "text_head.weight": uniform(PROJECTION_DIM, text_dim, fan_in=text_dim),
        "text_head.bias": uniform(PROJECTION_DIM, fan_in=text_dim),
    }
    for index, size in enumerate(sizes):
        tensors[f"image_features.{index}"] = torch.randn(size, image_dim, generator=generator)
        tensors[f"text_features.{index}"] = torch.randn(size, text_dim, generator=generator)
    return tensors


def _observe_losses(observe, temperature: float, tensors: dict[str, torch.Tensor]) -> list[dict]:
    return observe("clip_loss", temperature=temperature, tensors=encode_tensors(tensors)).data["batches"]


def _check_scalar(batch: dict) -> None:
    size = batch["size"]
    assert batch["type"] == "Tensor", (
        f"expected CLIPModel.forward to return the loss as a tensor (batch of {size}); observed a {batch['type']}"
    )
    assert batch["shape"] == [], (
        f"expected the loss to be a scalar (a 0-dim tensor, the mean over the batch) for a batch of {size}; "
        f"observed a tensor of shape {tuple(batch['shape'])}"
    )


def _directions(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> tuple[float, float]:
    rows = F.cross_entropy(logits, targets, reduction=reduction)
    columns = F.cross_entropy(logits.T, targets, reduction=reduction)
    return float(rows), float(columns)


def _candidate_losses(tensors: dict[str, torch.Tensor], index: int, temperature: float) -> dict[str, float]:
    """The symmetric InfoNCE (key EXPECTED) and what known bugs compute instead, in float64."""
    t = {name: value.double() for name, value in tensors.items()}
    image_linear = t[f"image_features.{index}"] @ t["image_head.weight"].T + t["image_head.bias"]
    text_linear = t[f"text_features.{index}"] @ t["text_head.weight"].T + t["text_head.bias"]
    image, text = F.normalize(image_linear, dim=-1), F.normalize(text_linear, dim=-1)
    similarity = image @ text.T
    diagonal = torch.arange(len(similarity))
    rows, columns = _directions(similarity / temperature, diagonal)
    multiplied = _directions(similarity * temperature, diagonal)
    zeros = _directions(similarity / temperature, torch.zeros_like(diagonal))
    unnormalised = _directions(image_linear @ text_linear.T / temperature, diagonal)
    no_temperature = _directions(similarity, diagonal)
    summed = _directions(similarity / temperature, diagonal, reduction="sum")
    return {
        EXPECTED: (rows + columns) / 2,
        MULTIPLIED: sum(multiplied) / 2,
        ROWS_ONLY: rows,
        COLUMNS_ONLY: columns,
        "the two directions are added instead of averaged": rows + columns,
        WRONG_TARGETS: sum(zeros) / 2,
        "missing normalisation: the embeddings are not L2-normalised": sum(unnormalised) / 2,
        "the logits are not divided by the temperature": sum(no_temperature) / 2,
        "the cross-entropy is summed over the batch instead of averaged": sum(summed) / 2,
    }


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)


@pytest.fixture(scope="module")
def computes_a_loss(worker, profile, run_seed) -> Callable[[], str | None]:
    """Why the CLIPModel's reports (structure, scalar, gradients, line counts) are not confirmed by a loss it
    computes on features and head weights drawn afresh here, or None. Any of the known wrong losses counts (those
    cost points in 7.2.2.2, not here): only code that computes a contrastive loss of those numbers gives one.
    Evaluated once, when the first test whose own checks passed asks."""

    @functools.cache
    def problem() -> str | None:
        tensors = _loss_inputs(run_seed + len(LOSS_BATCHES), (5,), *_dims(profile))
        observation = worker.call("clip_loss", temperature=TEMPERATURE, tensors=encode_tensors(tensors))
        why = (
            "the points of this test also need CLIPModel.forward to compute a contrastive loss: on features and head "
            "weights drawn afresh by the grader, "
        )
        if not observation.ok:
            return why + f"it could not be observed: {observation.message}"
        batches = observation.data.get("batches")
        first = batches[0] if isinstance(batches, list) and batches else None
        loss = first.get("loss") if isinstance(first, dict) else None
        candidates = _candidate_losses(tensors, 0, TEMPERATURE).values()
        if isinstance(loss, int | float) and any(_close(loss, value) for value in candidates):
            return None
        return why + f"it returned {loss!r}, which is not the symmetric InfoNCE of those numbers (nor a known variant)"

    return problem


def _confirm(problem: str | None) -> None:
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.mark.points(0.3)
@pytest.mark.number("7.2.2.1")
def test_clip_model_structure(observe, computes_a_loss):
    """7.2.2 CLIPModel: both encoders, heads of the right input sizes and the temperature built in __init__"""
    observed = observe("clip_structure", temperature=STRUCTURE_TEMPERATURE).data
    sizes = {"image_projection": observed["image_embedding"], "text_projection": observed["text_embedding"]}
    arguments = {"image_projection": "image_embedding", "text_projection": "text_embedding"}
    call = (
        f"CLIPModel(temperature={STRUCTURE_TEMPERATURE}, image_embedding={sizes['image_projection']}, "
        f"text_embedding={sizes['text_projection']})"
    )
    for attribute, encoder in observed["encoders"].items():
        class_name = "ImageEncoder" if attribute == "image_encoder" else "TextEncoder"
        assert encoder["present"] and encoder["expected_type"], (
            f"expected {call} to set `self.{attribute} = {class_name}()`; observed "
            + (f"a {encoder['type']}" if encoder["present"] else f"no `self.{attribute}`")
        )
    image, text = observed["encoders"]["image_encoder"], observed["encoders"]["text_encoder"]
    assert image["parameters"]["trainable"] == image["parameters"]["total"] > 0, (
        "expected every parameter of the image encoder to be trainable (CLIP trains it further); observed "
        f"{image['parameters']['trainable']:,} of {image['parameters']['total']:,} trainable"
    )
    assert text["parameters"]["trainable"] == 0, (
        f"expected the text encoder to stay frozen (no trainable parameters); observed "
        f"{text['parameters']['trainable']:,} trainable parameters (does CLIPModel set requires_grad=True on them?)"
    )
    for attribute, head in observed["heads"].items():
        assert head["present"] and head["projection_head"], (
            f"expected {call} to set `self.{attribute} = ProjectionHead(...)`; observed "
            + (f"a {head['type']}" if head["present"] else f"no `self.{attribute}`")
        )
        expected = (sizes[attribute], PROJECTION_DIM)
        assert (head["in_features"], head["out_features"]) == expected, (
            f"expected `self.{attribute}` to project {expected[0]} → {expected[1]} features (its input size is the "
            f"`{arguments[attribute]}` argument); observed {head['in_features']} → {head['out_features']}"
        )
    assert observed["has_temperature"], f"expected {call} to keep the temperature in `self.temperature`; it has none"
    kept = observed["temperature"]
    assert kept is not None and math.isclose(kept, STRUCTURE_TEMPERATURE, rel_tol=1e-6), (
        f"expected `self.temperature` to be the temperature passed in ({STRUCTURE_TEMPERATURE}); observed {kept}"
    )
    _confirm(computes_a_loss())


@pytest.mark.points(0.6)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.2.2.2")
def test_clip_loss_matches_symmetric_infonce(observe, profile, run_seed):
    """7.2.2 CLIPModel: loss matches the symmetric InfoNCE"""
    image_dim, text_dim = _dims(profile)
    for offset, (temperature, sizes) in enumerate(LOSS_BATCHES.items()):
        tensors = _loss_inputs(run_seed + offset, sizes, image_dim, text_dim)
        for index, batch in enumerate(_observe_losses(observe, temperature, tensors)):
            _check_scalar(batch)
            candidates = _candidate_losses(tensors, index, temperature)
            expected, observed = candidates[EXPECTED], batch["loss"]
            if _close(observed, expected):
                continue
            likely = next(
                (why for why, value in candidates.items() if _close(observed, value)),
                "the loss should be the mean of the cross-entropy of I @ T.T / temperature over its rows and over "
                "its columns, with targets torch.arange(N)",
            )
            pytest.fail(
                f"expected the symmetric InfoNCE loss {expected:.5f} for a batch of {batch['size']} pairs at "
                f"temperature {temperature} (fixed features through stub encoders and the standard heads); "
                f"observed {observed:.5f}: {likely}",
                pytrace=False,
            )


@pytest.mark.points(0.2)
@pytest.mark.number("7.2.2.3")
def test_clip_loss_is_a_scalar_on_the_cpu(observe, profile, computes_a_loss):
    """7.2.2 CLIPModel: forward returns a scalar loss that can be back-propagated, on the CPU, for batches of 1 and 4"""
    tensors = _loss_inputs(0, (1, 4), *_dims(profile))
    for batch in _observe_losses(observe, TEMPERATURE, tensors):
        _check_scalar(batch)
        assert batch["requires_grad"], (
            f"expected the loss to require grad so that the model can be trained (batch of {batch['size']}); it "
            "does not (is it computed under torch.no_grad(), detached, or turned into a number with .item()?)"
        )
        assert batch["loss"] is not None and math.isfinite(batch["loss"]), (
            f"expected a finite loss for a batch of {batch['size']}; observed {batch['loss']}"
        )
    _confirm(computes_a_loss())


@pytest.mark.points(0.3)
@pytest.mark.number("7.2.2.4")
def test_clip_gradients_reach_image_side_not_text_encoder(observe, computes_a_loss):
    """7.2.2 CLIPModel: gradients reach the image encoder and both heads, never the frozen text encoder"""
    parts = observe("clip_gradients", temperature=TEMPERATURE).data["parts"]
    image = parts["image_encoder"]
    assert image["with_gradient"] > 0, (
        f"expected the loss to send gradients into the image encoder (it is trained); none of its "
        f"{image['tensors']} parameter tensors got one (are the image features detached or computed under "
        "torch.no_grad()?)"
    )
    for attribute in ("image_projection", "text_projection"):
        head = parts[attribute]
        assert head["with_gradient"] == head["tensors"] > 0, (
            f"expected a gradient in every parameter of `self.{attribute}`; observed {head['with_gradient']} of "
            f"{head['tensors']} (does the loss use the projected embeddings of both heads?)"
        )
    text = parts["text_encoder"]
    assert text["with_gradient"] == 0, (
        f"expected no gradient in the frozen text encoder; {text['with_gradient']} of its {text['tensors']} "
        "parameter tensors got one (does CLIPModel set requires_grad=True on the text encoder's parameters?)"
    )
    _confirm(computes_a_loss())


@pytest.mark.points(0.2)
@pytest.mark.number("7.2.2.5")
def test_clip_forward_has_no_python_loops(observe, profile, submission, computes_a_loss):
    """7.2.2 CLIPModel: forward computes the loss without Python loops"""
    _check_scalar(_observe_losses(observe, TEMPERATURE, _loss_inputs(1, (3,), *_dims(profile)))[0])
    tensors = encode_tensors(_loss_inputs(2, LOOP_BATCHES, *_dims(profile)))
    batches = observe("clip_forward_line_counts", temperature=TEMPERATURE, tensors=tensors).data["batches"]
    problem = loop_verdict(
        batches,
        "CLIPModel.forward",
        submission,
        sizes=LOOP_BATCHES,
        items="pairs",
        expected="CLIPModel.forward to compute the loss with matrix operations, without a Python loop over the batch",
        larger="with a larger batch",
        advice="The logits of all pairs are one matrix product, I @ T.T, and F.cross_entropy takes the whole batch",
    )
    if problem:
        pytest.fail(problem, pytrace=False)
    _confirm(computes_a_loss())


@pytest.fixture(scope="session")
def clip_training(train_weights, reference_ns, profile) -> TrainedRun:
    """The one CLIP training run of a grading run: the student's CLIPModel, everything else standard; the
    weights of its image encoder and heads, loaded here."""
    image_dim, text_dim = _dims(profile)
    return train_weights(
        "clip_training_weights",
        clip_architecture(reference_ns, image_dim, text_dim),
        timeout=max(TRAINING_TIMEOUT, training_call_seconds(profile, "clip")),
        epochs=profile.grading_budgets.clip_epochs,
        seed=profile.seed,
    )


@pytest.mark.points(0.4)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.2.2.6")
@pytest.mark.training
@pytest.mark.timeout(TRAINING_TIMEOUT + 300)
def test_clip_training_gives_a_good_linear_probe(
    clip_training, reference_ns, run_data, probe_accuracy, profile, figures, credit
):
    """7.2.2 CLIPModel: CLIP trained with your CLIPModel gives a good linear probe and matches held-out images to their
    captions"""
    if not clip_training.ok:
        pytest.fail(f"training CLIP with your CLIPModel failed: {clip_training.error}", pytrace=False)
    losses = clip_training.losses
    figures.add_curve(
        "7.2.2 CLIP training loss per epoch (your CLIPModel)", losses, y_label="symmetric InfoNCE loss (nats)"
    )
    queries = tuple(reference_ns.SETUP.example_queries)
    matching, retrieved = clip_validation(reference_ns, clip_training, run_data, queries)
    if retrieved is not None:
        for query, shown in zip(queries, retrieved.chunk(len(queries)), strict=True):
            figures.add_images(
                f"7.2.2 validation images your trained CLIP retrieves first for “{query}”, best first", shown,
                columns=len(shown), heading=f"Retrieval: “{query}”",
            )
    accuracy = probe_accuracy(clip_features(reference_ns, clip_training, run_data))
    credit.record_accuracy("CLIP probe", accuracy)
    credit.record_accuracy("CLIP held-out caption matching", matching)
    credit.note(
        f"linear-probe test accuracy {accuracy:.2f}{_passes(profile, 'clip')}; held-out validation images matched to "
        f"their own caption {matching:.2f}{_passes(profile, 'clip_matching')}"
    )
    trained = f"{profile.grading_budgets.clip_epochs} epochs on the {profile.name} profile"
    problems = []
    if accuracy < profile.thresholds.clip:
        problems.append(
            f"expected the linear probe on the image encoder trained with your CLIPModel ({trained}) to reach "
            f"{profile.thresholds.clip:.2f}, the test accuracy a correct CLIPModel reaches{_reached(profile, 'clip')}; "
            f"observed {accuracy:.2f}."
        )
    if profile.thresholds.clip_matching is not None and matching < profile.thresholds.clip_matching:
        problems.append(
            f"expected CLIP trained with your CLIPModel ({trained}) to match {profile.thresholds.clip_matching:.2f} "
            f"of the held-out validation images to their own caption, among the captions of their batch of "
            f"{reference_ns.CLIP_CONFIG['batch_size']}, as a correct CLIPModel does"
            f"{_reached(profile, 'clip_matching')}; observed {matching:.2f}."
        )
    assert not problems, " ".join([*problems, _loss_report(losses, reference_ns.CLIP_CONFIG["batch_size"])])


def _passes(profile, metric: str) -> str:
    """What passes, and what the reference reached, for the note every grade shows."""
    threshold = getattr(profile.thresholds, metric)
    if threshold is None:
        return " (not graded on this profile)"
    reached = profile.reference_range(metric)
    reference = f"; the reference reached {reached[0]:.2f}-{reached[1]:.2f}" if reached else ""
    return f" ({threshold:.2f} passes{reference})"


def _reached(profile, metric: str) -> str:
    reached = profile.reference_range(metric)
    return f" (the reference reached {reached[0]:.2f}-{reached[1]:.2f} in calibration)" if reached else ""


def _loss_report(losses: list[float], batch_size: int) -> str:
    """The loss per epoch, and the likely bug when it never left the loss of equal logits, ln(batch size)."""
    report = f"The mean loss per epoch was {', '.join(f'{loss:.3f}' for loss in losses)}."
    chance = math.log(batch_size)
    if losses and min(losses) > 0.95 * chance:
        report += (
            f" It stayed near ln({batch_size}) = {chance:.2f}, the loss of logits that are all equal: the logits may "
            "be multiplied by the temperature instead of divided by it, or the targets may not be torch.arange(N)."
        )
    return report
