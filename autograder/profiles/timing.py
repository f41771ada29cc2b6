"""Time limits that follow a profile's budgets: per training call, per training test, and the worker's life.

A profile may record what each training phase of a grade costs on the machine its budgets were chosen for
(`costs`: seconds a phase takes whatever its epochs, and seconds per epoch, measured by
`bench/real_sizes.py`). A phase's call may take `MARGIN` times its expected time on the grading budgets, a
test that triggers training that plus `TEST_GRACE_SECONDS` for the trusted probe, and the worker's life
`MARGIN` times the whole grade's expected training. Limits never go below the floors, which are what every
profile without costs gets (the synthetic profiles, whose phases take seconds and whose machine may be busy:
on a loaded shared machine work ran 4.6 to 12 times slower). The grade's deadline (`deadline_minutes`)
still bounds everything.

The worker's private memory is limited (RLIMIT_DATA, see `worker.limits.Limits`): 4 GiB on a CPU profile, where
Gradescope's container has 4 GB for grader and worker together, and `CUDA_MEMORY_BYTES` on a profile whose device
is `cuda`, where the CUDA libraries keep their own host-side state and a GPU machine has the memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from autograder.profiles.profile import Budgets, Profile, ProfileError
from autograder.worker.limits import Limits

MARGIN = 3.0
MIN_CALL_SECONDS = 900.0  # a training call of a profile without costs, or whose costs are smaller
TEST_GRACE_SECONDS = 300.0  # a training test beyond its call: the trusted linear probe, the figures
MIN_WORKER_SECONDS = 3600.0  # the worker's lifetime (wall and CPU seconds) without costs
MEASURED_THREADS = 2  # the costs are wall seconds on 2 cores, where torch keeps both busy
PHASES = ("method1", "method2", "method3", "clip")
CUDA_MEMORY_BYTES = 16 * 1024**3


@dataclass(frozen=True)
class PhaseCost:
    """Seconds a training phase takes whatever its epochs (data, features, the probe), and per epoch."""

    once: float
    per_epoch: float

    def seconds(self, epochs: int) -> float:
        return self.once + self.per_epoch * epochs


def _epochs(phase: str, budgets: Budgets) -> int:
    """The epochs that scale a phase: the autoencoder's for Method I, the classifier's for II, the trusted
    probe's for III (its features are computed once), CLIP's."""
    return {
        "method1": budgets.ae_epochs,
        "method2": budgets.probe_epochs,
        "method3": budgets.probe_epochs,
        "clip": budgets.clip_epochs,
    }[phase]


def phase_costs(profile: Profile) -> dict[str, PhaseCost]:
    """The profile's measured costs per phase; empty when it records none."""
    raw = profile.raw.get("costs") or {}
    costs = {}
    for phase in PHASES:
        entry = raw.get(phase)
        if entry is None:
            continue
        try:
            costs[phase] = PhaseCost(float(entry["once"]), float(entry["per_epoch"]))
        except (KeyError, TypeError, ValueError) as error:
            message = f"{profile.path}: costs.{phase} needs numbers 'once' and 'per_epoch' ({error})"
            raise ProfileError(message) from None
    return costs


def expected_seconds(profile: Profile, phase: str) -> float:
    """What a phase should take on the grading budgets, on the machine the costs were measured on (0: unknown)."""
    cost = phase_costs(profile).get(phase)
    return cost.seconds(_epochs(phase, profile.grading_budgets)) if cost is not None else 0.0


def training_call_seconds(profile: Profile, phase: str) -> float:
    """The time limit of the worker call that runs `phase` on the grading budgets."""
    if phase not in PHASES:
        raise ValueError(f"unknown training phase {phase!r}; the phases are {', '.join(PHASES)}")
    return max(MIN_CALL_SECONDS, MARGIN * expected_seconds(profile, phase))


def training_test_seconds(profile: Profile) -> float:
    """The time limit of a test that may trigger a training run: the longest phase's call, plus the probe."""
    return max(training_call_seconds(profile, phase) for phase in PHASES) + TEST_GRACE_SECONDS


def uses_cuda(profile: Profile) -> bool:
    return str(profile.raw.get("device", "cpu")).startswith("cuda")


def worker_limits(profile: Profile) -> Limits:
    """The worker's lifetime and CPU time: `MARGIN` times the grade's expected training (CPU seconds for the
    threads the costs were measured with), never below the floors; more private memory on a CUDA profile."""
    training = sum(expected_seconds(profile, phase) for phase in PHASES)
    wall = max(MIN_WORKER_SECONDS, MARGIN * training)
    cpu = max(MIN_WORKER_SECONDS, MARGIN * MEASURED_THREADS * training)
    if uses_cuda(profile):
        return Limits(wall_seconds=wall, cpu_seconds=int(cpu), memory_bytes=CUDA_MEMORY_BYTES)
    return Limits(wall_seconds=wall, cpu_seconds=int(cpu))
