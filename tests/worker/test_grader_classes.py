"""The grader's own classes are recognised by identity: a student class that is one, inherits from one (whatever
module it says it is from) or borrows one of its methods is refused, and a class the student wrote is not."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from torch import nn

from autograder.worker.probes.base import ProbeError, refuse_grader_classes, standard


def _renamed_subclass() -> nn.Module:
    class Encoder(standard().StandardEncoder):
        pass

    Encoder.__module__ = "ps7_student"
    return Encoder()


def _borrower() -> nn.Module:
    class Encoder(nn.Module):
        forward = standard().StandardEncoder.forward

        def __init__(self) -> None:
            super().__init__()
            self.convolutions = nn.ModuleList([nn.Conv2d(3, 24, 4, 2, 1)])

    Encoder.__module__ = "ps7_student"
    return Encoder()


def _wrapper() -> nn.Module:
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = standard().StandardEncoder()

        def forward(self, x):
            return self.inner(x)

    Encoder.__module__ = "ps7_student"
    return Encoder()


@pytest.mark.parametrize(
    ("build", "refusal"),
    [
        (lambda: standard().StandardEncoder(), "built on the grader's own `StandardEncoder`"),
        (_renamed_subclass, "built on the grader's own `StandardEncoder`"),
        (_borrower, "uses the grader's own code as `Encoder.forward`"),
        (_wrapper, "built on the grader's own `StandardEncoder`"),
    ],
)
def test_the_graders_classes_are_refused_by_identity(build, refusal):
    with pytest.raises(ProbeError, match=refusal.replace("(", r"\(")):
        refuse_grader_classes(build(), "Encoder")


def test_a_students_own_class_and_the_allowed_standard_head_pass():
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 24, 4, 2, 1)
            self.head = standard().StandardProjectionHead(4, 2)

        def forward(self, x):
            return F.relu(self.conv(x))

    Encoder.__module__ = "ps7_student"
    refuse_grader_classes(Encoder(), "Encoder", allowed=(standard().StandardProjectionHead,))
    with pytest.raises(ProbeError, match="StandardProjectionHead"):
        refuse_grader_classes(Encoder(), "Encoder")
