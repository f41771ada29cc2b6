"""The dependency analysis that picks which top-level statements the grader runs, on real parsed cells."""

from __future__ import annotations

from autograder.ingest import CellRef, extract
from autograder.ingest.dependencies import assignment_facts, load_plan, statement_names

IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nimport json"
TRAIN_AE = """def train_ae(model, dataloader, epochs=100):
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
    global calls
    calls += 1
    for _ in range(epochs):
        for images, _ in dataloader:
            images = images.to(device)
            loss = mse(model(images), images) + EPS
    return model, [wandb, tokenizer, LR]"""
TRAIN_CLASSIFIER = """def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False, loss_fn=loss_fn):
    for images, labels in dataloader:
        logits = cls(encoder(images.to(device)).view(-1, feat_dim))
        loss = criterion(logits, labels) + loss_fn(logits, labels)
    return cls, []"""


def _sources(plan):
    return [part.source for part in plan.parts]


def test_graded_definitions_get_the_top_level_statements_they_use_in_notebook_order():
    cells = [
        IMPORTS,
        'device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")\nplt_title = "unused"',
        "feat_dim = 24 * 4 * 4\ncriterion = nn.CrossEntropyLoss()\nmse = nn.MSELoss()\nloss_fn = F.cross_entropy",
        'cfg = dict(lr=1e-3)\ncfg["wd"] = 1e-4\ncalls = 0\ncalls += 1\nEPS: float = 1e-8\nLR = 1e-2',
        "try:\n    import wandb\nexcept ImportError:\n    wandb = None",
        "tokenizer = AutoTokenizer.from_pretrained(SETUP.text_model)\nLR = 1e-3",
        TRAIN_AE,
        TRAIN_CLASSIFIER,
        "with torch.no_grad():\n    unused = torch.zeros(1)\nprint(json.dumps(cfg))",
    ]
    plan = load_plan(extract(cells))
    assert _sources(plan) == [
        'device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")',
        'plt_title = "unused"',  # literal constants load as before, needed or not
        "feat_dim = 24 * 4 * 4",
        "criterion = nn.CrossEntropyLoss()",
        "mse = nn.MSELoss()",
        "loss_fn = F.cross_entropy",
        "cfg = dict(lr=1e-3)",
        'cfg["wd"] = 1e-4',
        "calls = 0",
        "calls += 1",
        "EPS: float = 1e-8",
        "try:\n    import wandb\nexcept ImportError:\n    wandb = None",
        "tokenizer = AutoTokenizer.from_pretrained(SETUP.text_model)",
        "LR = 1e-3",  # the last binding in cell order wins
        TRAIN_AE,
        TRAIN_CLASSIFIER,
    ]
    assert plan.not_run == {}
    [device] = [part for part in plan.parts if part.source.startswith("device")]
    assert (device.name, device.cell, device.lineno, device.binds) == ("cell 2, line 1", CellRef(2), 1, ("device",))
    ran = "cell 4, line 2: `cfg[\"wd\"] = 1e-4` was run by the grader, because `train_ae` uses `cfg`"
    assert ran in plan.diagnostics
    assert "import json" in plan.imports


def test_statements_that_need_notebook_state_are_not_run_and_say_which_name_cell_and_why():
    cells = [
        IMPORTS,
        "ae = Autoencoder().to(DEVICE)\nae, ae_loss_traj = train_ae(ae, unlabeled_loader, epochs=SETUP.ae_epochs)",
        "feat_dim = ae.encoder(torch.zeros(1, 3, 64, 64)).numel()",
        "scale = feat_dim * 2",  # derived from state, transitively
        "device = train_ae(Autoencoder(), my_batches)[0].device",  # a training run
        "criterion = sklearn_model.fit(x, y)",  # a training method
        "train_loader = TensorBatches(my_images)",  # a name the notebook's own data cell binds
        TRAIN_CLASSIFIER.replace("loss_fn=loss_fn", "loss_fn=scale").replace("dataloader:", "train_loader:"),
    ]
    plan = load_plan(extract(cells))
    assert [part.name for part in plan.parts] == ["train_classifier"]
    assert set(plan.not_run) == {"feat_dim", "scale", "device", "criterion", "train_loader"}
    feat_dim = plan.not_run["feat_dim"]
    assert feat_dim.startswith("`feat_dim` is bound in cell 3, line 1 (`feat_dim = ae.encoder(torch.zeros(1, 3, 64, ")
    assert "from `ae`, which the notebook's own cells make (`ae, ae_loss_traj = train_ae(" in feat_dim
    assert "must not depend on the data, on training or on other notebook state" in feat_dim
    assert "from `feat_dim`, which cell 3, line 1 binds from notebook state" in plan.not_run["scale"]
    assert "by calling `train_ae`, which the notebook runs on its data or trained models" in plan.not_run["device"]
    assert "by calling `.fit(...)`, which trains" in plan.not_run["criterion"]
    assert "which the notebook's own cells bind (`train_loader = TensorBatches(" in plan.not_run["train_loader"]
    uses = "`train_classifier` uses `feat_dim`, bound in cell 3, line 1"
    assert any(note.startswith(uses) for note in plan.diagnostics)


def test_helpers_are_followed_through_calls_default_arguments_and_decorators():
    cells = [
        IMPORTS,
        "registry = dict()\nwidth = int('12')",  # not literals: loaded only because Encoder needs them
        "def register(function):\n    registry[function.__name__] = function\n    return function",
        "def make_layers(channels=width):\n    return nn.Conv2d(3, channels, 4, 2, 1)",
        "@register\nclass Encoder(nn.Module):\n    def __init__(self, in_channels=3):\n        super().__init__()\n"
        "        self.net = make_layers()",
        "def unused_helper():\n    return never_needed",
        "never_needed = torch.ones(3)",
    ]
    plan = load_plan(extract(cells))
    names = [part.name for part in plan.parts]
    assert names == ["cell 2, line 1", "cell 2, line 2", "register", "make_layers", "Encoder", "unused_helper"]
    assert "never_needed = torch.ones(3)" not in _sources(plan)


def test_the_last_binding_wins_and_the_graded_definition_is_named_when_redefined():
    cells = [
        IMPORTS,
        "class Encoder(nn.Module):\n    pass",
        "def helper():\n    return 1",
        "helper = make_from(ae)",  # rebinds the helper from notebook state
        "class Encoder(nn.Module):\n    def forward(self, x):\n        return helper(x)",
        "counter = len(train_images)\ncounter = 5",
    ]
    submission = extract(cells)
    plan = load_plan(submission)
    assert [part.name for part in plan.parts] == ["Encoder", "counter"]  # the old helper is not loaded
    assert plan.parts[0].cell == CellRef(5)
    assert "`helper` is bound in cell 4, line 1" in plan.not_run["helper"]
    graded = "`Encoder` is defined 2 times (cell 2, line 1, cell 5, line 1): the grader graded the last one, in cell 5"
    assert graded in plan.diagnostics


def test_updates_of_imported_modules_are_not_dragged_in():
    cells = [IMPORTS, "json.dumps(ae)\njson.encoder = None", "def train_ae(model, loader):\n    return json.dumps(1)"]
    plan = load_plan(extract(cells))
    assert [part.name for part in plan.parts] == ["train_ae"]
    assert plan.not_run == {}


def test_provided_names_are_supplied_by_the_grader_not_by_the_students_statements():
    cells = [IMPORTS, "DEVICE = torch.device('cuda:0')\nTOKENIZER = make()", "def train_ae(m, d):\n    return DEVICE"]
    assert [part.name for part in load_plan(extract(cells)).parts] == ["train_ae"]


def test_statement_names_reads_binds_and_what_runs_later():
    names = statement_names("loss = [k for k in ks][0] or (lambda a, b: F.mse_loss(a, b) * scale)")
    assert names.binds == {"loss"} and names.fresh == {"loss"}
    assert {"ks"} <= names.now and {"F", "scale"} <= names.later and "k" not in names.now | names.later
    update = statement_names("if cuda:\n    device = 'cuda'")
    assert update.binds == {"device"} and update.fresh == set()  # conditional: earlier bindings still count
    assert statement_names("cfg['wd'] = wd").stores == {"cfg"}
    assert statement_names("model.to(device)").calls_on == {"model"}


def test_assignment_facts_come_from_the_assignment_source():
    facts = assignment_facts()
    assert facts.graded == {
        "Encoder", "Decoder", "train_ae", "train_classifier", "ProjectionHead", "CLIPModel", "retrieve_images"
    }
    assert {"train_ae", "train_classifier", "train_clip", "test", "embed_images", "read_split"} <= facts.runs
    assert not {"Encoder", "Autoencoder", "TensorBatches", "center_crop"} & facts.runs  # cheap to call
    assert {"train_loader", "unlabeled_images", "ae", "cls", "encoder", "clip_model", "val_embeddings"} <= set(
        facts.state
    )
    assert not set(facts.state) & facts.supplied and "_" not in facts.state
    assert {"DEVICE", "SETUP", "TOKENIZER", "CLIP_CONFIG", "np", "F"} <= facts.supplied
    assert facts.state["ae"].startswith("ae, ae_loss_traj = train_ae(ae, unlabeled_loader")


def test_no_module_counts_as_notebook_state():
    """A name the template's cells bind by importing (the check cell's `sys`, say) is not the notebook's data: a
    student's statement that reads `sys` must still run (it once did not, and a helper using `sys` was lost)."""
    facts = assignment_facts()
    template_imports = {"sys", "subprocess", "os", "torch", "np", "nn", "math", "check_this_notebook"}
    assert not template_imports & set(facts.state), sorted(template_imports & set(facts.state))
