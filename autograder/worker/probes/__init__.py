"""Probes: small functions that run next to student code and return observations (see `base`).

Importing this package registers every probe in `PROBES`; the suites call them by name.
"""

from autograder.worker.probes import autoencoder, clip  # noqa: F401 - registers the probes
from autograder.worker.probes.base import PROBES, ProbeContext, ProbeError

__all__ = ["PROBES", "ProbeContext", "ProbeError"]
