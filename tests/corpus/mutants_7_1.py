"""Part 7.1 of the corpus: the reference with one realistic bug (MUTANTS), and correct solutions written in other
styles (VARIANTS). Replacements are exact text of the reference notebook's cells (see `harness.build_notebook`)."""

from __future__ import annotations

import nbformat

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from tests.corpus.harness import Mutant, Variant

ENCODER_FORWARD = """        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.relu(self.conv4(x))"""
TRAIN_AE_STEP = """            optimizer.zero_grad()
            reconstruction = model(images)
            loss = F.mse_loss(reconstruction, images)
            loss.backward()
            optimizer.step()"""
CLASSIFIER_PARAMETERS = """    parameters = list(cls.parameters())
    if supervised:
        parameters += list(encoder.parameters())
"""
CLASSIFIER_FEATURES = """            with torch.set_grad_enabled(supervised):
                features = encoder(images)
"""


def _method_flag(method: int, value: bool) -> tuple[str, str]:
    """Set the `supervised` argument of one method cell."""
    old = f"supervised={not value},\n)\nmethod{method}_accuracy"
    return old, f"supervised={value},\n)\nmethod{method}_accuracy"


MUTANTS = [
    # 7.1.1 Encoder
    Mutant(
        "encoder-kernel-3",
        "7.1.1",
        [("nn.Conv2d(12, 24, kernel_size=4,", "nn.Conv2d(12, 24, kernel_size=3,")],
        ["7.1.1.1", "7.1.1.3", "7.1.1.5"],
    ),
    Mutant(
        "encoder-stride-1",
        "7.1.1",
        [("nn.Conv2d(48, 24, kernel_size=4, stride=2,", "nn.Conv2d(48, 24, kernel_size=4, stride=1,")],
        ["7.1.1.1", "7.1.1.2", "7.1.1.5"],
    ),
    Mutant(
        "encoder-channels-wrong",
        "7.1.1",
        [("nn.Conv2d(24, 48,", "nn.Conv2d(24, 32,"), ("nn.Conv2d(48, 24,", "nn.Conv2d(32, 24,")],
        ["7.1.1.1", "7.1.1.3", "7.1.1.5"],
    ),
    # The structure tests confirm the layers with any common activation, LeakyReLU included: only the range and
    # the function tests may cost points.
    Mutant(
        "encoder-leaky-relu",
        "7.1.1",
        [(ENCODER_FORWARD, ENCODER_FORWARD.replace("F.relu(", "F.leaky_relu("))],
        ["7.1.1.4", "7.1.1.5"],
        only_these=True,
    ),
    Mutant(
        "encoder-no-final-relu",
        "7.1.1",
        [("        return F.relu(self.conv4(x))", "        return self.conv4(x)")],
        ["7.1.1.4", "7.1.1.5"],
    ),
    # 7.1.2 Decoder
    Mutant(
        "decoder-no-sigmoid",
        "7.1.2",
        [("return torch.sigmoid(self.deconv4(x))", "return self.deconv4(x)")],
        ["7.1.2.4", "7.1.2.5"],
    ),
    Mutant(
        "decoder-relu-instead-of-sigmoid",
        "7.1.2",
        [("return torch.sigmoid(self.deconv4(x))", "return F.relu(self.deconv4(x))")],
        ["7.1.2.4", "7.1.2.5"],
    ),
    Mutant(
        "decoder-padding-0",
        "7.1.2",
        [("nn.ConvTranspose2d(24, 48, kernel_size=4, stride=2, padding=1)", "nn.ConvTranspose2d(24, 48, 4, 2, 0)")],
        ["7.1.2.1", "7.1.2.2", "7.1.2.5"],
    ),
    Mutant(
        "decoder-missing-inner-relu",
        "7.1.2",
        [("x = F.relu(self.deconv2(x))", "x = self.deconv2(x)")],
        ["7.1.2.5"],
    ),
    # 7.1.3 train_ae
    Mutant(
        "train-ae-no-zero-grad",
        "7.1.3",
        [(TRAIN_AE_STEP, TRAIN_AE_STEP.replace("            optimizer.zero_grad()\n", ""))],
        ["7.1.3.2"],
    ),
    Mutant(
        "train-ae-no-step",
        "7.1.3",
        [(TRAIN_AE_STEP, TRAIN_AE_STEP.replace("\n            optimizer.step()", ""))],
        ["7.1.3.1", "7.1.3.2", "7.1.3.3"],
        breaks_learning=True,
        reasons={"7.1.3.3": "expected training to lower the reconstruction error on test images"},
    ),
    Mutant(
        "train-ae-l1-loss",
        "7.1.3",
        [("loss = F.mse_loss(reconstruction, images)", "loss = F.l1_loss(reconstruction, images)")],
        ["7.1.3.2"],
    ),
    Mutant(
        "train-ae-sum-reduction",
        "7.1.3",
        [("loss = F.mse_loss(reconstruction, images)", 'loss = F.mse_loss(reconstruction, images, reduction="sum")')],
        ["7.1.3.2"],
    ),
    Mutant(
        "train-ae-loss-not-averaged",
        "7.1.3",
        [
            (
                "loss_traj.append(epoch_loss / len(dataloader))\n    return model,",
                "loss_traj.append(epoch_loss)\n    return model,",
            )
        ],
        ["7.1.3.2"],
    ),
    # 7.1.4 train_classifier and the method cells
    Mutant(
        "train-classifier-encoder-not-frozen",
        "7.1.4",
        [
            (CLASSIFIER_PARAMETERS, "    parameters = list(cls.parameters()) + list(encoder.parameters())\n"),
            (CLASSIFIER_FEATURES, "            features = encoder(images)\n"),
        ],
        ["7.1.4.1", "7.1.4.2", "7.1.4.5"],
        breaks_learning=True,
    ),
    Mutant(
        "train-classifier-encoder-never-trained",
        "7.1.4",
        [(CLASSIFIER_PARAMETERS, "    parameters = list(cls.parameters())\n")],
        ["7.1.4.1", "7.1.4.3", "7.1.4.4"],
        breaks_learning=True,
    ),
    Mutant(
        "train-classifier-flatten-wrong",
        "7.1.4",
        [("logits = cls(features.flatten(start_dim=1))", "logits = cls(features.flatten())")],
        ["7.1.4.1", "7.1.4.2", "7.1.4.3"],
    ),
    Mutant(
        "method-cells-flags-swapped",
        "7.1.4",
        [_method_flag(1, True), _method_flag(2, False), _method_flag(3, True)],
        ["7.1.4.6"],
    ),
    # 7.1.5 report
    Mutant(
        "report-number-missing",
        "7.1.5",
        [("method 2 accuracy: 0.435", "method 2 accuracy:")],
        ["7.1.5.1", "7.1.5.2"],
    ),
    Mutant(
        "report-wrong-order",
        "7.1.5",
        [("method 1 accuracy: 0.320", "method 1 accuracy: 0.210")],
        ["7.1.5.2"],
    ),
]

SEQUENTIAL_ENCODER = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 12, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(12, 24, 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.Sequential(nn.Conv2d(24, 48, 4, 2, 1), nn.ReLU()),
            nn.Conv2d(48, 24, 4, 2, 1),
            nn.ReLU(),
        )

    def forward(self, x):
        return self.net(x)"""

SEQUENTIAL_DECODER = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        layers = []
        for a, b in [(24, 48), (48, 24), (24, 12)]:
            layers += [nn.ConvTranspose2d(a, b, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1)), nn.ReLU()]
        layers += [nn.ConvTranspose2d(12, out_channels, 4, stride=2, padding=1), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)"""

# The last layer is registered first: the grader follows the order the forward pass applies them.
LIST_DECODER = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        self.out = nn.ConvTranspose2d(12, out_channels, kernel_size=4, stride=2, padding=1)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(i, o, 4, 2, 1) for i, o in ((24, 48), (48, 24), (24, 12))])
        self.squash = nn.Sigmoid()

    def forward(self, x):
        for up in self.ups:
            x = torch.relu(up(x))
        return self.squash(self.out(x))"""

LOOP_ENCODER_FORWARD = """        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        return x"""

CRITERION_TRAIN_AE_STEP = """            reconstruction = model(images)
            loss = nn.MSELoss()(reconstruction, images)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()"""

DETACH_TRAIN_CLASSIFIER = """def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):
    trainable = [*cls.parameters(), *encoder.parameters()] if supervised else cls.parameters()
    optimizer = torch.optim.Adam(trainable, lr=1e-3, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="classifier"):
        epoch_loss = 0.0
        for images, labels in dataloader:
            features = encoder(images)
            if not supervised:
                features = features.detach()
            loss = criterion(cls(features.view(features.size(0), -1)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return cls, loss_traj"""


def _reference_cell(start: str) -> str:
    """The whole source of the reference cell that starts with `start` (replaced by a variant's version)."""
    notebook = nbformat.read(REPO_ROOT / REFERENCE_NOTEBOOK, as_version=4)
    (source,) = [cell.source for cell in notebook.cells if cell.source.startswith(start)]
    return source


VARIANTS = [
    Variant(
        "sequential-modules-and-percent-report",
        [
            (_reference_cell("class Encoder"), SEQUENTIAL_ENCODER),
            (_reference_cell("class Decoder"), SEQUENTIAL_DECODER),
            ("method 1 accuracy: 0.320", "- **method 1 accuracy:** 32.0%"),
            ("method 2 accuracy: 0.435", "- **method 2 accuracy:** 43.5%"),
            ("method 3 accuracy: 0.258", "- **method 3 accuracy:** 25.8%"),
        ],
    ),
    Variant(
        "functional-relu-modulelist-registered-out-of-order",
        [
            (ENCODER_FORWARD, LOOP_ENCODER_FORWARD),
            (_reference_cell("class Decoder"), LIST_DECODER),
        ],
    ),
    Variant(
        "train-ae-criterion-zero-grad-after-step",
        [(TRAIN_AE_STEP, CRITERION_TRAIN_AE_STEP)],
        trains="7.1.3",
    ),
    Variant(
        "train-classifier-detach-and-criterion",
        [(_reference_cell("def train_classifier"), DETACH_TRAIN_CLASSIFIER)],
        trains="7.1.4",
    ),
]
