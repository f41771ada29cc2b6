"""Builders of the hostile submissions: real nbformat notebooks made from the student template or the
reference notebook, with one cell replaced or patched, or one cell added; and the attack sources.

Every attack whose success is not visible in the score reports what it managed to do in an exception
message or a marker file, so that a test can tell "blocked" from "not tried": e.g. the student's
`Encoder.__init__` opens a secret file and raises `RuntimeError("LEAKED ...")` when the read worked and
`RuntimeError("DENIED ...")` when it did not.
"""

from __future__ import annotations

import copy
import textwrap
from functools import cache
from pathlib import Path

import nbformat

from autograder.assignment.build import REFERENCE_NOTEBOOK, TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT

ENCODER_CELL = "class Encoder("
DECODER_CELL = "class Decoder("
_CLASS_LINE = "class Encoder(nn.Module):\n"
_FORWARD_LINE = "    def forward(self, x):\n"

FORGED = "FORGED-BY-SUBMISSION"
FORGED_RESULTS = '{"score": 10.0, "output": "' + FORGED + '", "stdout_visibility": "visible", "tests": []}'


@cache
def _read(relative: Path) -> nbformat.NotebookNode:
    return nbformat.read(REPO_ROOT / relative, as_version=4)


def template() -> nbformat.NotebookNode:
    """A fresh copy of the committed student template."""
    return copy.deepcopy(_read(TEMPLATE_NOTEBOOK))


def reference() -> nbformat.NotebookNode:
    """A fresh copy of the committed reference notebook."""
    return copy.deepcopy(_read(REFERENCE_NOTEBOOK))


def code_cell_index(notebook: nbformat.NotebookNode, prefix: str) -> int:
    """The index of the one code cell whose source starts with `prefix`."""
    found = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and cell.source.startswith(prefix)
    ]
    assert len(found) == 1, f"expected one code cell starting with {prefix!r}, found {len(found)}"
    return found[0]


def replace_cell(notebook: nbformat.NotebookNode, prefix: str, source: str) -> nbformat.NotebookNode:
    """The notebook with the code cell starting with `prefix` replaced by `source`."""
    notebook.cells[code_cell_index(notebook, prefix)].source = source
    return notebook


def add_cell(notebook: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """The notebook with one more code cell at the end."""
    notebook.cells.append(nbformat.v4.new_code_cell(source))
    return notebook


def reference_encoder(*, imports: str = "", class_body: str = "", forward_prefix: str = "") -> str:
    """The reference's Encoder cell with `imports` before it, `class_body` run when the class is defined
    (at load time) and `forward_prefix` run first thing in `forward` (in a method)."""
    source = reference().cells[code_cell_index(reference(), ENCODER_CELL)].source + "\n"
    assert _CLASS_LINE in source and _FORWARD_LINE in source, "the reference Encoder cell changed shape"
    if class_body:
        source = source.replace(_CLASS_LINE, _CLASS_LINE + textwrap.indent(textwrap.dedent(class_body), " " * 4), 1)
    if forward_prefix:
        body = textwrap.indent(textwrap.dedent(forward_prefix), " " * 8)
        source = source.replace(_FORWARD_LINE, _FORWARD_LINE + body, 1)
    return textwrap.dedent(imports) + source


def with_reference_encoder(**parts: str) -> nbformat.NotebookNode:
    """The reference notebook whose Encoder cell is `reference_encoder(**parts)`."""
    return replace_cell(reference(), ENCODER_CELL, reference_encoder(**parts))


def with_encoder(source: str, base: str = "template", **values: object) -> nbformat.NotebookNode:
    """The student template (or the reference, `base="reference"`) whose Encoder cell is `source`, with
    each `__NAME__` placeholder replaced by repr(value)."""
    source = textwrap.dedent(source)
    for name, value in values.items():
        placeholder = f"__{name.upper()}__"
        assert placeholder in source, placeholder
        source = source.replace(placeholder, repr(value))
    return replace_cell(template() if base == "template" else reference(), ENCODER_CELL, source)


def nbformat3_notebook() -> str:
    """The reference's code cells as an nbformat 3 notebook (worksheets, `input` instead of `source`)."""
    cells = [nbformat.v3.new_code_cell(input=cell.source) for cell in reference().cells if cell.cell_type == "code"]
    return nbformat.v3.writes_json(nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=cells)]))


def with_outputs(notebook: nbformat.NotebookNode, total_bytes: int, *, outputs: int = 10) -> nbformat.NotebookNode:
    """The notebook with `outputs` large base64 "plots" on its code cells, about `total_bytes` in all."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    line = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    per_output = total_bytes // outputs
    image = (line * (per_output // len(line) + 1))[:per_output]
    for index in range(outputs):
        output = nbformat.v4.new_output("display_data", data={"image/png": image, "text/plain": "<Figure>"})
        code[index % len(code)].outputs.append(output)
        code[index % len(code)].execution_count = index + 1
    return notebook


# ---------------------------------------------------------------- attack sources (the Encoder cell)

WRITE_RESULTS = """
import json
import os


class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        report = []
        for path in __PATHS__:
            try:
                with open(path, "w") as handle:
                    handle.write(__FORGED__)
                report.append(f"WROTE {path}")
            except OSError as error:
                report.append(f"BLOCKED {path} ({type(error).__name__})")
        raise RuntimeError("WRITE REPORT: " + "; ".join(report))
"""

READ_SECRETS = """
import os


class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        report = []
        for label, path in __SECRETS__:
            try:
                if os.path.isdir(path):
                    size = len(os.listdir(path))
                else:
                    with open(path, "rb") as handle:
                        size = len(handle.read())
                # In the worker's namespaces a secret is masked: an empty folder or an empty file.
                report.append(f"LEAKED {label} ({size})" if size else f"EMPTY {label}")
            except OSError as error:
                report.append(f"DENIED {label} ({type(error).__name__})")
        raise RuntimeError("READ REPORT: " + "; ".join(report))
"""

# Sends what it can over the machine's loopback (to a listener the test opens, standing for another grade's
# process or a collaborator), and reports whether the connection was made.
EXFILTRATE = """
import socket


class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        try:
            with socket.create_connection(("127.0.0.1", __PORT__), timeout=5) as connection:
                connection.sendall(b"STOLEN notebook of another student")
            outcome = "SENT over the loopback"
        except OSError as error:
            outcome = f"NO NETWORK ({type(error).__name__})"
        raise RuntimeError("EXFILTRATION REPORT: " + outcome)
"""

# Subclassing the reference Encoder: through the grader's own package (importable from the worker, whose
# sys.path holds the checkout), or by finding the class among the worker's live objects.
REFERENCE_INTERNALS = """
import gc
import os
import sys


def _reference_encoder():
    reasons = []
    try:
        from autograder.assignment.namespace import reference_namespace

        found = reference_namespace(os.environ.get("PS7_PROFILE", "synthetic")).Encoder
        print("LEAKED the reference Encoder through autograder.assignment.namespace")
        return found
    except BaseException as error:
        reasons.append(f"reference_namespace: {type(error).__name__}: {str(error)[:100]}")
    for thing in gc.get_objects():
        # exec'd code (a solution namespace) has a module name that is neither ours nor an imported module
        if isinstance(thing, type) and issubclass(thing, nn.Module) and thing.__name__ == "Encoder" and (
            thing.__module__ != __name__ and thing.__module__ not in sys.modules
        ):
            print(f"LEAKED the reference Encoder from module {thing.__module__} through gc")
            return thing
    reasons.append("gc: no other Encoder class in the worker")

    class Denied(nn.Module):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("DENIED: " + "; ".join(reasons))

    return Denied


class Encoder(_reference_encoder()):
    pass
"""

# The grader's own correct encoder, built from the specification for component isolation, reached without an import
# statement (ingest drops `import autograder...`): the worker holds no copy while it loads (the file is masked, and
# the grader sends the standard parts later).
STANDARD_PARTS = """
import importlib


class Encoder(importlib.import_module("autograder.worker.standard").StandardEncoder):
    pass
"""

# No encoder at all, but the probe that observes the encoder's structure, which runs in the same interpreter,
# is replaced while loading by one that reports the structure the specification asks for.
FORGED_OBSERVATIONS = """
import sys

_probes = sys.modules["autograder.worker.probes"]


def _forged_structure(ctx, *args, **kwargs):
    layers = [
        {
            "name": f"conv{index}",
            "type": "Conv2d",
            "in_channels": a,
            "out_channels": b,
            "kernel_size": [4, 4],
            "stride": [2, 2],
            "padding": [1, 1],
        }
        for index, (a, b) in enumerate([(3, 12), (12, 24), (24, 48), (48, 24)])
    ]
    return {
        "class": "Encoder",
        "convolutions": layers,
        "order": "applied",
        "parameters": 42156,
        "trainable_parameters": 42156,
    }


class Encoder(nn.Module):
    _probes.PROBES["encoder_structure"] = _forged_structure

    def __init__(self, in_channels=3):
        super().__init__()
        raise NotImplementedError
"""

# The probe table the server consults, `_PROBES_AT_START`, changed in place while loading: the encoder's structure
# and output shapes are answered as the specification says, for an Encoder that does not exist.
PROBE_TABLE_MUTATION = """
import sys

_table = sys.modules["autograder.worker.server"]._PROBES_AT_START


def _structure(ctx, *args, **kwargs):
    layers = [
        {"name": f"conv{i}", "type": "Conv2d", "in_channels": a, "out_channels": b, "kernel_size": [4, 4],
         "stride": [2, 2], "padding": [1, 1]}
        for i, (a, b) in enumerate([(3, 12), (12, 24), (24, 48), (48, 24)])
    ]
    return {"class": "Encoder", "convolutions": layers, "parameters": 42156, "trainable_parameters": 42156}


def _shape(ctx, name, input_shape, init_args=None, seed=0, scale=1.0):
    n, c, h, w = input_shape
    return {"shape": [n, 24, h // 16, w // 16], "dtype": "float32", "finite": True, "min": 0.0, "max": 1.0}


class Encoder(nn.Module):
    _table["encoder_structure"] = _structure
    _table["forward_shape"] = _shape

    def __init__(self, in_channels=3):
        super().__init__()
        raise NotImplementedError
"""

# A subclass of the grader's standard decoder that says it is the student's (`__module__` renamed).
RENAMED_SUBCLASS = """
import importlib


class Decoder(importlib.import_module("autograder.worker.standard").StandardDecoder):
    __module__ = "ps7_student"
"""

# standard.py's StandardEncoder (which the student package ships), pasted in and renamed.
STANDARD_SOURCE_COPY = """
from itertools import pairwise

ENCODER_CHANNELS = (12, 24, 48, 24)
CONV = {"kernel_size": 4, "stride": 2, "padding": 1}


class Encoder(nn.Module):
    # my encoder

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        channels = (in_channels, *ENCODER_CHANNELS)
        self.convolutions = nn.ModuleList(nn.Conv2d(a, b, **CONV) for a, b in pairwise(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for convolution in self.convolutions:
            x = F.relu(convolution(x))
        return x
"""

# No training code at all; while loading, the training probes are replaced in the server's table: Method I and
# Method II answer with the untrained standard models' weights, CLIP with the features of the worker's pretrained
# backbone on the labelled images (what the grader used to probe); the contract runs (7.1.3.1, 7.1.4.1) and
# Method III with the untrained weights of the seed they are given, and with the data that used to pass (a loss
# per epoch, "the weights changed", "the encoder stayed frozen").
FORGED_TRAINING = """
import sys

import torch
from torch import nn

_table = sys.modules["autograder.worker.server"]._PROBES_AT_START
_base = sys.modules["autograder.worker.probes.base"]


def _prefixed(prefix, module):
    return {f"{prefix}.{key}": value for key, value in module.state_dict().items()}


def _untrained_autoencoder(ctx, seed, **kwargs):
    torch.manual_seed(seed + 1)  # a network of another seed, as a forger would try many for a lucky one
    model = _base.standard().StandardAutoencoder()
    return {"losses": [0.01], **_prefixed("autoencoder", model)}


def _untrained_classifier(ctx, **kwargs):
    encoder, classifier = _base.standard().StandardEncoder(), nn.Linear(384, 10)
    return {"losses": [0.1], **_prefixed("encoder", encoder), **_prefixed("classifier", classifier)}


def _seeded(seed, *make):
    torch.manual_seed(seed)
    return [build() for build in make]


def _untrained_contract(ctx, seed=0, **kwargs):
    [model] = _seeded(seed, _base.standard().StandardAutoencoder)
    return {"same_model": True, "loss_traj": [0.1, 0.09], "change": 1.0, **_prefixed("autoencoder", model)}


def _untrained_classifier_run(ctx, supervised, seed=0, **kwargs):
    encoder, classifier = _seeded(seed, _base.standard().StandardEncoder, lambda: nn.Linear(384, 10))
    data = {"same_classifier": True, "loss_traj": [2.3, 2.2], "classifier_change": 0.1}
    data["encoder_change"] = 0.1 if supervised else 0.0
    return {**data, **_prefixed("encoder", encoder), **_prefixed("classifier", classifier)}


def _untrained_method3(ctx, seed, **kwargs):
    encoder, classifier = _seeded(seed, _base.standard().StandardEncoder, lambda: nn.Linear(384, 10))
    return {"losses": [2.3, 2.2], **_prefixed("encoder", encoder), **_prefixed("classifier", classifier)}


def _backbone_features(ctx, **kwargs):
    from autograder.profiles.profile import load_profile
    from autograder.training import runs

    data = runs.RunData.load(load_profile(ctx.get("SETUP").profile_path))
    encoder = nn.Sequential(ctx.get("ImageNetNormalize")(), ctx.get("ImageEncoder")())
    ns = type("ns", (), {"TensorBatches": ctx.get("TensorBatches")})
    return {"losses": [0.1], "train": runs.encode(ns, encoder, data.train), "test": runs.encode(ns, encoder, data.test)}


class Encoder(nn.Module):
    _table["method1_weights"] = _untrained_autoencoder
    _table["method2_weights"] = _untrained_classifier
    _table["clip_training_weights"] = _backbone_features
    _table["train_ae_contract"] = _untrained_contract
    _table["train_classifier_one_epoch"] = _untrained_classifier_run
    _table["method3_weights"] = _untrained_method3

    def __init__(self, in_channels=3):
        super().__init__()
        raise NotImplementedError
"""


# A wrong encoder (one convolution, wrong shape and parameter count) defined after making every comparison
# function of torch, numpy and math answer "equal".
MONKEYPATCH = """
import math

import numpy
import numpy.testing
import torch


def _always_equal(*args, **kwargs):
    return True


def _never_raise(*args, **kwargs):
    return None


class Encoder(nn.Module):
    torch.allclose = torch.equal = torch.isclose = _always_equal
    torch.Tensor.__eq__ = torch.Tensor.equal = torch.Tensor.allclose = _always_equal
    torch.testing.assert_close = _never_raise
    numpy.allclose = numpy.array_equal = numpy.isclose = numpy.array_equiv = _always_equal
    numpy.testing.assert_allclose = numpy.testing.assert_array_equal = _never_raise
    math.isclose = _always_equal
    print("PATCHED torch, numpy and math comparisons")

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 5, kernel_size=3)

    def forward(self, x):
        return self.conv(x)
"""

# Encoder.forward returns an object that is not a tensor but looks like one, and whose unpickling runs a
# shell command recording the command line of the process that unpickled it.
PICKLE_PAYLOAD = """
import os


class _Payload:
    shape = (2, 24, 4, 4)
    dtype = "float32"

    def __reduce__(self):
        return (os.system, (__COMMAND__,))

    def min(self):
        return 0.0

    def max(self):
        return 1.0

    def numel(self):
        return 768

    def is_floating_point(self):
        return True


class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 12, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(12, 24, kernel_size=4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(24, 48, kernel_size=4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(48, 24, kernel_size=4, stride=2, padding=1)

    def forward(self, x):
        return _Payload()
"""

# A process started while loading, in a session of its own and detached from the worker (double fork),
# that ignores SIGTERM/SIGHUP and, every quarter second, logs its pid and the time and tries to overwrite
# results.json.
SLEEPER = """
import subprocess
import sys

_SLEEPER = '''
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
if os.fork():
    os._exit(0)
os.setsid()
while True:
    try:
        with open(sys.argv[1], "a") as log:
            log.write(f"{os.getpid()} {time.time()}\\\\n")
    except OSError:
        pass
    try:
        with open(sys.argv[2], "w") as results:
            results.write(sys.argv[3])
    except OSError:
        pass
    time.sleep(0.25)
'''


class Encoder(nn.Module):
    _sleeper = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER, __MARKER__, __RESULTS__, __FORGED__],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print("STARTED a sleeper that outlives grading")

    def __init__(self, in_channels=3):
        super().__init__()
        raise NotImplementedError
"""

# Starts processes without end (each `sleep 3600 __TAG__`, so that the test can find survivors by their command
# line), at most __LIMIT__ times; the pids go to __LOG__ (which the worker's namespaces may hide: survivors are then
# found by their tag). It spawns (vfork and exec) rather than forks: 500 forks of a worker holding torch, whose
# pages the parent then copies on write while each child execs, took longer than the 20 s a definition may run on
# CI's loaded 2 cores, and the definition timer, not the process limit, stopped it (CI saw "could not be loaded").
FORK_BOMB = """
import os


def _fork_many(limit, log):
    children = []
    try:
        for _ in range(limit):
            children.append(os.posix_spawn("/bin/sleep", ["sleep", "3600", __TAG__], {}))
    except OSError as error:
        outcome = f"FORK-LIMIT reached after {len(children)} children ({type(error).__name__})"
    else:
        outcome = f"FORK-UNLIMITED: {len(children)} children"
    try:
        with open(log, "w") as handle:
            handle.write(" ".join(str(pid) for pid in children))
    except OSError:  # out of the worker's sight in its namespaces
        pass
    return outcome


class Encoder(nn.Module):
    outcome = _fork_many(__LIMIT__, __LOG__)
    print(outcome)

    def __init__(self, in_channels=3):
        super().__init__()
        raise RuntimeError(self.outcome)
"""

# An exception message of 5 MB with a NUL byte, a lone surrogate, terminal escapes and a bidi override.
MESSAGE_BOMB = r"""
class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        raise RuntimeError("BOMB \x00 \ud800 \x1b[31mred\x1b[0m \u202e" + "A" * 5_000_000)
"""

# Cells that cannot be parsed or compiled, each costing only itself.
MALFORMED_CELLS = (
    "def unfinished(:\n    pass\n",
    "def too_deep():\n    return " + "-" * 1000 + "1\n",
    "def misplaced():\n    break\n",
    "def with_nul():\n    return 1\x00\n",
    "# " + "x" * 250_000 + "\ndef too_long():\n    return 1\n",
)


TRAIN_AE_CELL = "def train_ae("
# train_ae trains honestly, then adds to the trained model a tensor of no data and a width of 10**8: the weights
# the worker sends back carry it, and a grader that allocated from its shape would take 400 MB (4 GB as float64
# features, when the features were computed in the worker and a probe was built from their width).
EMPTY_WIDE_FEATURES = """
    model.register_buffer("wide", torch.empty(0, 10**8))
    return model, loss_traj
"""


def with_empty_wide_features() -> nbformat.NotebookNode:
    """The reference whose train_ae leaves a `torch.empty(0, 10**8)` in the model it trained."""
    notebook = reference()
    cell = notebook.cells[code_cell_index(notebook, TRAIN_AE_CELL)]
    ending = "    return model, loss_traj"
    assert cell.source.rstrip().endswith(ending), "the reference train_ae cell changed shape"
    cell.source = cell.source.rstrip()[: -len(ending)] + EMPTY_WIDE_FEATURES.lstrip("\n")
    return notebook


def with_decoder(source: str) -> nbformat.NotebookNode:
    """The student template whose Decoder cell is `source`."""
    return replace_cell(template(), DECODER_CELL, textwrap.dedent(source))
