"""7.1.4 train_classifier and the method cells (1 point): the student's `train_classifier` trains a linear
classifier on the standard encoder (never the student's own). Public: the return contract and what each flag
trains. Hidden: one epoch gives the reference's weights for each flag; Method II reaches its threshold;
Method III is trained and stays below Method I (both judged here from the trained weights); the method cells pass
supervised False, True, False (read from the notebook's source, never executed)."""

import math
import re
from dataclasses import dataclass

import pytest
import torch

from autograder.grading.trained import (
    TrainedRun,
    classification_loss,
    classifier_architecture,
    classifier_test_logits,
    initialised,
    largest_change,
    trained_run,
)
from autograder.ingest.reader import CellRef
from autograder.ingest.static import keyword_arguments_of_calls
from autograder.profiles.timing import training_call_seconds
from autograder.training.probe import accuracy
from autograder.training.runs import random_images, random_labels
from autograder.worker.protocol import Observation, encode_tensors

STL10_CLASSES = 10
CHANCE_LOSS = math.log(STL10_CLASSES)  # the cross-entropy of a classifier that guesses

LOSS_TOLERANCE = 1e-4  # relative
WEIGHT_TOLERANCE = 1e-5
TRAINING_TIMEOUT = 900.0
METHODS = {1: ("Method I", False), 2: ("Method II", True), 3: ("Method III", False)}
PURPOSE = {
    1: "a linear probe on the frozen autoencoder encoder",
    2: "a new encoder trained together with the classifier",
    3: "a linear probe on a frozen random encoder",
}

# A classifier fed the features of a whole batch as one row: `features.flatten()` instead of one row per image.
WRONG_FLATTEN = re.compile(r"mat1 and mat2 shapes cannot be multiplied \(1x\d+ and 384x10\)")

pytestmark = pytest.mark.tags("7.1", "autoencoder")


@dataclass
class OneRun:
    """A short `train_classifier_one_epoch` run, judged here from the weights it sent: how far the encoder and the
    classifier moved from the initialisation drawn here from the same seed, and the cross-entropy on the images it
    trained on (drawn here too) before and after."""

    observation: Observation
    encoder_change: float
    classifier_change: float
    loss_before: float
    loss_after: float


def _one_epoch(worker, seed: int, images: int = 64, **args) -> OneRun:
    """`train_classifier_one_epoch` on the student's code; a failure names the flattening bug when it fits."""
    architecture = classifier_architecture()
    observation = worker.call(
        "train_classifier_one_epoch", expect=architecture.specs(), seed=seed, images=images, **args
    )
    run = trained_run(observation, architecture, torch.device("cpu"))  # a handful of images: no solution needed
    if not run.ok:
        hint = ""
        if WRONG_FLATTEN.search(run.error):
            hint = (
                "\nLikely cause: the features are flattened wrong: the classifier needs one row of 24·4·4 = 384 "
                "features per image, features.flatten(start_dim=1), not one row for the whole batch."
            )
        pytest.fail(run.error + hint, pytrace=False)
    initial = initialised(classifier_architecture, seed)
    inputs = random_images(images, seed), random_labels(images, seed)
    return OneRun(
        observation,
        encoder_change=largest_change(run, initial, "encoder"),
        classifier_change=largest_change(run, initial, "classifier"),
        loss_before=classification_loss(initial.parts["encoder"], initial.parts["classifier"], *inputs),
        loss_after=classification_loss(run.part("encoder"), run.part("classifier"), *inputs),
    )


@pytest.mark.points(0.2)
@pytest.mark.number("7.1.4.1")
def test_train_classifier_contract(worker, run_seed):
    """7.1.4 train_classifier: returns (cls, loss_traj); supervised=False trains the classifier only, True both"""
    for supervised in (False, True):
        run = _one_epoch(worker, run_seed, supervised=supervised, images=16, batch_size=8, epochs=2)
        call = f"train_classifier(..., epochs=2, supervised={supervised})"
        reported = run.observation.data
        assert reported.get("same_classifier") is True, (
            f"expected {call} to return the classifier it was given as its first value"
        )
        losses = reported.get("loss_traj")
        assert isinstance(losses, list) and len(losses) == 2, (
            f"expected {call} to return one mean loss per epoch (2 values); observed "
            f"{len(losses) if isinstance(losses, list) else losses!r}"
        )
        assert all(isinstance(loss, int | float) and math.isfinite(loss) and loss > 0 for loss in losses), (
            f"expected positive, finite mean losses from {call}; observed {losses}"
        )
        assert run.classifier_change > 0, (
            f"expected {call} to train the classifier; its weights did not change (are cls's parameters given to "
            "the optimizer, and optimizer.step() called?)"
        )
        if supervised:
            assert run.encoder_change > 0, (
                f"expected {call} to train the encoder together with the classifier; the encoder's weights did not "
                "change (with supervised=True its parameters go to the optimizer too, and its features keep "
                "their gradient)"
            )
        else:
            assert run.encoder_change == 0, (
                f"expected {call} to leave the encoder frozen; its weights changed by up to "
                f"{run.encoder_change:.3g} (with supervised=False only cls's parameters are optimised)"
            )
        assert run.loss_after < run.loss_before, (
            f"expected {call} to lower the cross-entropy on the images it trained on; it went from "
            f"{run.loss_before:.4f} to {run.loss_after:.4f} (the loss is the cross-entropy of cls(features) against "
            "the labels, minimised with loss.backward() and optimizer.step())"
        )


def _compare_with_reference(worker, reference, supervised: bool, seed: int) -> None:
    run = _one_epoch(worker, seed, supervised=supervised)
    student = run.observation
    expected_run = reference("train_classifier_one_epoch", supervised=supervised, seed=seed)
    call = f"train_classifier(..., supervised={supervised})"
    data = student.data
    if supervised:
        assert run.encoder_change > 0, (
            f"expected {call} to train the encoder as well; its weights did not change (the encoder is never "
            "trained with supervised=True: give its parameters to the optimizer, and keep its gradient)"
        )
    else:
        assert run.encoder_change == 0, (
            f"expected {call} to leave the encoder frozen; its weights changed by up to {run.encoder_change:.3g} "
            "(encoder not frozen: only cls's parameters may be optimised; are the flags swapped?)"
        )
    assert run.classifier_change > 0, f"expected {call} to train the classifier; its weights did not change"
    expected, observed = expected_run.data["loss_traj"], data["loss_traj"]
    assert len(observed) == len(expected) and math.isclose(observed[0], expected[0], rel_tol=LOSS_TOLERANCE), (
        f"expected loss_traj {[round(loss, 6) for loss in expected]} after one epoch of {call}; observed "
        f"{[round(loss, 6) for loss in observed]} (the mean cross-entropy of cls(features flattened per image) "
        "against the labels, averaged over the minibatches)"
    )
    worst, name = max(
        (float((student.tensors[name] - tensor).abs().max()), name) for name, tensor in expected_run.tensors.items()
    )
    assert worst <= WEIGHT_TOLERANCE, (
        f"expected the weights after one epoch of {call} to match the reference's; `{name}` differs by up to "
        f"{worst:.3g} (expected Adam with lr=1e-3 and weight_decay=1e-4, and for each minibatch: zero_grad, "
        "cross-entropy, backward, step)"
    )


@pytest.mark.points(0.2)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.4.2")
def test_train_classifier_frozen_matches_the_reference(worker, reference, run_seed):
    """7.1.4 train_classifier: with supervised=False, one epoch gives the reference's classifier, encoder unchanged"""
    _compare_with_reference(worker, reference, False, run_seed)


@pytest.mark.points(0.2)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.4.3")
def test_train_classifier_supervised_matches_the_reference(worker, reference, run_seed):
    """7.1.4 train_classifier: with supervised=True, one epoch gives the reference's encoder and classifier"""
    _compare_with_reference(worker, reference, True, run_seed)


@pytest.fixture(scope="session")
def labels_argument(train_labels) -> str:
    return encode_tensors({"labels": train_labels})


def _method_run(train_weights, profile, labels_argument, probe: str) -> TrainedRun:
    """A method's encoder and classifier trained by the student's train_classifier on the profile's grading
    budgets: their weights, loaded here."""
    budgets = profile.grading_budgets
    return train_weights(
        probe,
        classifier_architecture(),
        timeout=max(TRAINING_TIMEOUT, training_call_seconds(profile, probe.split("_")[0])),  # "method2_weights"
        labels=labels_argument,
        epochs=budgets.probe_epochs,
        seed=profile.seed,
        batch_size=budgets.batch_size,
    )


@pytest.fixture(scope="session")
def method2_run(train_weights, profile, labels_argument) -> TrainedRun:
    """Method II with the student's train_classifier on the profile's budget, once per grading run."""
    return _method_run(train_weights, profile, labels_argument, "method2_weights")


@pytest.fixture(scope="session")
def method3_run(train_weights, profile, labels_argument) -> TrainedRun:
    """Method III with the student's train_classifier on the profile's budget, once per grading run."""
    return _method_run(train_weights, profile, labels_argument, "method3_weights")


def _accuracy(run: TrainedRun, method: str, reference_ns, run_data, test_labels, figures) -> float:
    """Test accuracy of the trained classifier, computed here from its weights (the labels stay here), after
    drawing its loss curve."""
    if not run.ok:
        pytest.fail(f"training {method} with your train_classifier failed: {run.error}", pytrace=False)
    figures.add_curve(
        f"7.1.4 {method} classifier loss per epoch (your train_classifier)", run.losses,
        y_label="cross-entropy (nats)", baseline=(CHANCE_LOSS, f"chance: ln {STL10_CLASSES} = {CHANCE_LOSS:.2f}"),
    )
    return accuracy(classifier_test_logits(reference_ns, run, run_data), test_labels)


@pytest.mark.training
@pytest.mark.timeout(TRAINING_TIMEOUT + 60)
@pytest.mark.points(0.15)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.4.4")
def test_method2_reaches_its_threshold(method2_run, reference_ns, run_data, profile, test_labels, figures, credit):
    """7.1.4 train_classifier: Method II (encoder trained with the classifier) reaches its accuracy threshold"""
    observed = _accuracy(method2_run, "Method II", reference_ns, run_data, test_labels, figures)
    threshold = profile.thresholds.method2
    credit.record_accuracy("Method II", observed)
    losses = ", ".join(f"{loss:.3f}" for loss in method2_run.losses[-3:])
    assert observed >= threshold, (
        f"expected an encoder and classifier trained together by train_classifier(..., supervised=True) "
        f"({profile.grading_budgets.probe_epochs} epochs) to reach the test accuracy a correct train_classifier "
        f"reaches on this data; observed {observed:.2f}, below it (last losses: {losses}). Is the encoder trained too "
        "when supervised=True?"
    )


@pytest.mark.training
@pytest.mark.timeout(TRAINING_TIMEOUT + 60)
@pytest.mark.points(0.1)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.4.5")
def test_method3_stays_below_method1(
    method3_run, reference_ns, run_data, profile, train_labels, test_labels, figures, credit
):
    """7.1.4 train_classifier: Method III (frozen random encoder) is trained, and stays below Method I"""
    observed = _accuracy(method3_run, "Method III", reference_ns, run_data, test_labels, figures)
    method1 = profile.thresholds.method1
    credit.record_accuracy("Method III", observed)
    initial = initialised(classifier_architecture, profile.seed)  # as the worker's Method III run initialises it
    change = largest_change(method3_run, initial, "encoder")
    assert change == 0, (
        f"expected the random encoder to stay frozen in train_classifier(..., supervised=False); its weights changed "
        f"by up to {change:.3g} (encoder not frozen)"
    )
    # A classifier that learned nothing would stay below Method I too: its training loss must have fallen.
    initial.parts["classifier"].to(reference_ns.DEVICE)
    images = run_data.train
    before = classification_loss(initial.parts["encoder"], initial.parts["classifier"], images, train_labels)
    after = classification_loss(method3_run.part("encoder"), method3_run.part("classifier"), images, train_labels)
    assert after < before, (
        "expected train_classifier(..., supervised=False) to train the classifier on the frozen random encoder's "
        f"features: its cross-entropy on the training images went from {before:.3f} to {after:.3f}"
    )
    if profile.thresholds.method3_below_method1:
        assert observed < method1, (
            "expected a classifier on a frozen random encoder (Method III) to stay below what Method I reaches with a "
            f"correctly trained autoencoder; observed {observed:.2f}, as high as that"
        )


def _method_calls(submission) -> dict[int, tuple[CellRef, object]]:
    """The `train_classifier` call of each method cell: by the `method{k}_` names its cell assigns when that is
    unambiguous, else the first three calls in notebook order (the order of the problem statement)."""
    calls = keyword_arguments_of_calls(submission, "train_classifier", "supervised", position=4)
    found: dict[int, list[tuple[CellRef, object]]] = {}
    for cell, value in calls:
        marks = {k for k in METHODS if re.search(rf"\bmethod{k}_", submission.source_of(cell.position) or "")}
        if len(marks) == 1:
            found.setdefault(marks.pop(), []).append((cell, value))
    if all(len(found.get(k, [])) == 1 for k in METHODS):
        return {k: found[k][0] for k in METHODS}
    return dict(zip(METHODS, calls, strict=False))


@pytest.mark.points(0.15)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.4.6")
def test_method_cells_pass_the_right_flags(submission, credit):
    """7.1.4 method cells: Methods I, II, III call train_classifier with supervised False, True, False"""
    calls = _method_calls(submission)
    problems = []
    for k, (label, wanted) in METHODS.items():
        if k not in calls:
            problems.append(f"{label}: expected a call train_classifier(..., supervised={wanted}); none was found")
            continue
        cell, value = calls[k]
        if value is Ellipsis:
            problems.append(f"{label} ({cell}): `supervised=...` is still a placeholder; write True or False")
        elif not isinstance(value, bool):
            problems.append(f"{label} ({cell}): supervised should be a literal True or False; observed {value!r}")
        elif value is not wanted:
            problems.append(f"{label} ({cell}) is {PURPOSE[k]}: expected supervised={wanted}; observed {value}")
    credit.award((len(METHODS) - len(problems)) / len(METHODS))
    swapped = all(calls.get(k, (0, None))[1] is (not wanted) for k, (_, wanted) in METHODS.items())
    hint = " The flags are swapped." if swapped else ""
    assert not problems, "; ".join(problems) + "." + hint
