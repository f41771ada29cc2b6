"""7.1.3 train_ae (hidden): the student's `train_ae` trains the reference autoencoder like the reference does."""

import math

import pytest

LOSS_TOLERANCE = 1e-4
WEIGHT_TOLERANCE = 1e-5

pytestmark = pytest.mark.tags("7.1", "autoencoder")


@pytest.mark.points(1.0)
@pytest.mark.visibility("after_due_date")
@pytest.mark.number("7.1.3.1")
def test_train_ae_matches_the_reference(observe, reference):
    """7.1.3 train_ae: one epoch gives the reference's losses and weights"""
    student = observe("train_ae_one_epoch")
    expected_run = reference("train_ae_one_epoch")
    expected, observed = expected_run.data["loss_traj"], student.data["loss_traj"]
    assert len(observed) == len(expected), (
        f"expected loss_traj to hold one mean loss per epoch ({len(expected)} for 1 epoch); observed "
        f"{len(observed)} values"
    )
    assert all(math.isclose(a, b, rel_tol=LOSS_TOLERANCE) for a, b in zip(observed, expected, strict=True)), (
        f"expected the mean MSE loss of the epoch to be {expected[0]:.6f}; observed {observed[0]:.6f} "
        "(is the loss the MSE between the reconstruction and the input, averaged over the batches?)"
    )
    worst = max(
        (float((student.tensors[name] - tensor).abs().max()), name) for name, tensor in expected_run.tensors.items()
    )
    assert worst[0] <= WEIGHT_TOLERANCE, (
        f"expected the trained weights to match the reference; `{worst[1].removeprefix('weights.')}` differs "
        f"by up to {worst[0]:.3g} (one optimizer step per minibatch, after zero_grad and backward?)"
    )
