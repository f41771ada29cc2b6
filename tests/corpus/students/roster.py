"""The students of the corpus: who wrote what, in which style. Names starting `ok_` are correct; names
starting `bug_` hold one realistic bug each (`expected.py` says which component must lose points)."""

from __future__ import annotations

from tests.corpus.students import pieces as p
from tests.corpus.students.build import Student, code

# ---- report answers, in students' words ---------------------------------------------------------------

REPORT_PLAIN = """method 1 accuracy: 0.319
method 2 accuracy: 0.441
method 3 accuracy: 0.262

Method 2 works best since the encoder is trained with the labels. Method 3 is the worst because a random
encoder has not learned anything, the autoencoder features are somewhere in between."""

REPORT_ROMAN = """Method I accuracy: 0.321
Method II accuracy: 0.437
Method III accuracy: 0.255

II > I > III. Supervised training gives the encoder features that are made for classification."""

REPORT_PERCENT = """method 1 accuracy: 31.2%
method 2 accuracy: 44.6%
method 3 accuracy: 25.9%

The supervised one is best (44.6%), random is worst."""

REPORT_TABLE = """| Method | Test accuracy |
|---|---|
| Method I (autoencoder encoder, frozen) | 31.9% |
| Method II (encoder trained with labels) | 43.1% |
| Method III (random encoder, frozen) | 25.6% |

Method II is the best and Method III the worst, as expected."""

REPORT_BOLD = """- **method 1 accuracy:** 0.32
- **method 2 accuracy:** 0.44
- **method 3 accuracy:** 0.26

*Why:* reconstruction makes the encoder keep some information about the object, but not as much as
training on labels."""

REPORT_PRINTED = """Method I accuracy: 0.318
Method II accuracy: 0.429
Method III accuracy: 0.251
(copied from the output above)"""

REPORT_WRONG_ORDER = """method 1 accuracy: 0.435
method 2 accuracy: 0.320
method 3 accuracy: 0.258

The supervised method is the best, random is the worst."""

CLIP_PLAIN = """CLIP accuracy: 0.802

Much better than the autoencoder, the ResNet was pretrained on ImageNet."""
CLIP_PERCENT = """CLIP accuracy: 80.2%

That is way higher than all the methods in 7.1."""
CLIP_BOLD = "**CLIP accuracy:** 0.79\n\nBetter than 7.1 because of the pretrained image encoder and the captions."
CLIP_PRINTED = "CLIP linear probe accuracy: 0.805\n\n(from the cell above) much better than method 1."
CLIP_EQUALS = "CLIP accuracy = 0.81, so CLIP features are a lot better than the autoencoder ones."

# ---- cells students add -------------------------------------------------------------------------------

COLAB_START = [code(p.PIP_INSTALL), code(p.COLAB_MOUNT), code(p.COLAB_CD)]
ORDERED_DICT_IMPORT = "from collections import OrderedDict\n"
ALIAS_IMPORTS = "import torch.nn.functional as fn\nimport torch.optim as opt\n"
HYPERPARAMETERS = "LR = 1e-3\nWEIGHT_DECAY = 1e-4\nNUM_CLASSES = 10\n"
SEEDS = "torch.manual_seed(0)\nnp.random.seed(0)\n"
MSE_LAMBDA = "mse = lambda a, b: ((a - b) ** 2).mean()\n"

ENCODER_LAYER_LIST = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        layers = []
        for c_in, c_out in [(in_channels, 12), (12, 24), (24, 48), (48, 24)]:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)
"""

DECODER_LAYER_LIST = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        sizes = [24, 48, 24, 12, out_channels]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.ConvTranspose2d(sizes[i], sizes[i + 1], kernel_size=4, stride=2, padding=1))
            layers.append(nn.ReLU() if i < len(sizes) - 2 else nn.Sigmoid())
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)
"""

ENCODER_ALIAS = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 12, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(12, 24, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(24, 48, 4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(48, 24, 4, stride=2, padding=1)

    def forward(self, x):
        return fn.relu(self.conv4(fn.relu(self.conv3(fn.relu(self.conv2(fn.relu(self.conv1(x))))))))
"""

TRAIN_AE_LAMBDA = p.train_ae(
    """            model.train()
            optimizer.zero_grad()
            loss = mse(model(images), images)
            loss.backward()
            optimizer.step()
"""
)

TRAIN_AE_ALIAS = p.train_ae(
    """            optimizer.zero_grad()
            pred = model(images)
            loss = fn.mse_loss(pred, images)
            loss.backward()
            optimizer.step()
"""
)

TRAIN_CLASSIFIER_HYPERPARAMETERS = p.train_classifier(
    """    if supervised == True:
        model_params = list(encoder.parameters()) + list(cls.parameters())
    else:
        model_params = list(cls.parameters())
    optimizer = torch.optim.Adam(model_params, lr=LR, weight_decay=WEIGHT_DECAY)
""",
    """            optimizer.zero_grad()
            if supervised == False:
                encoder.eval()
                with torch.no_grad():
                    features = encoder(images)
            else:
                features = encoder(images)
            outputs = cls(features.view(len(features), -1))
            loss = F.cross_entropy(outputs, labels)
            loss.backward()
            optimizer.step()
""",
)

TRAIN_CLASSIFIER_ALIAS = p.train_classifier(
    """    if not supervised:
        optimizer = opt.Adam(cls.parameters(), lr=1e-3, weight_decay=1e-4)
    else:
        optimizer = opt.Adam(list(cls.parameters()) + list(encoder.parameters()), lr=1e-3, weight_decay=1e-4)
""",
    """            feats = encoder(images) if supervised else encoder(images).detach()
            loss = fn.cross_entropy(cls(feats.flatten(start_dim=1)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

CLIP_DEVICE_ATTRIBUTE = p.clip_model(
    p.CLIP_INIT_KEYWORDS + "        self.loss_fn = nn.CrossEntropyLoss()\n",
    """        image_vec = self.image_projection(self.image_encoder(batch["image"]))
        text_vec = self.text_projection(self.text_encoder(batch["input_ids"], batch["attention_mask"]))
        logits = image_vec @ text_vec.T
        logits = logits / self.temperature
        ground_truth = torch.arange(batch["image"].shape[0], dtype=torch.long, device=device)
        total = self.loss_fn(logits, ground_truth) + self.loss_fn(logits.T, ground_truth)
        return total / 2
""",
)

RETRIEVE_PRINTS = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    query_tokens = tokenizer(query, return_tensors="pt")
    query_tokens = {key: value.to(device) for key, value in query_tokens.items()}
    text_features = model.text_encoder(query_tokens["input_ids"], query_tokens["attention_mask"])
    text_embedding = model.text_projection(text_features)
    dot_similarity = text_embedding @ image_embeddings.T
    values, indices = torch.topk(dot_similarity.squeeze(0), k)
    print("top scores:", values)
    return [image_filenames[idx] for idx in indices]
"""

METHOD1_POSITIONAL = """# Method I: the autoencoder's encoder, frozen.
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method1_loss_traj = train_classifier(ae.encoder, cls, train_loader, SETUP.probe_epochs, False)
method1_accuracy = test(ae.encoder, cls, test_loader)
print(f"Method I accuracy: {method1_accuracy:.3f}")
"""

# The first tries of a student who fixed them in later cells (the last definition is the one "Run all" keeps).
FIRST_TRY_ENCODER = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 12, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(12, 24, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(24, 48, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(48, 24, 3, 2, 1), nn.ReLU(),
        )

    def forward(self, x):
        return self.net(x)
"""
FIXED_ENCODER = "# kernel size must be 4, not 3 (the parameter count was wrong)\n" + ENCODER_LAYER_LIST

FIRST_TRY_RETRIEVE = p.BUG_RETRIEVE_ASCENDING
FIXED_RETRIEVE = "# fixed: largest scores first\n" + p.RETRIEVE_DICT_TORCH_TENSOR

CORRECT_TRAIN_AE_FIRST = p.TRAIN_AE_CRITERION
LATER_L1_TRAIN_AE = "# experiment: L1 loss instead of MSE\n" + p.BUG_TRAIN_AE_L1

DEVICE = [code(p.DEVICE_CELL)]
TOKENIZER = [code(p.TOKENIZER_CELL)]

STYLE_SEQUENTIAL = {
    "encoder": p.ENCODER_SEQUENTIAL_SHARED_RELU,
    "decoder": p.DECODER_SEQUENTIAL_SHARED_RELU,
    "train_ae": p.TRAIN_AE_CRITERION,
    "train_classifier": p.TRAIN_CLASSIFIER_NO_GRAD,
    "projection": p.HEAD_F_NORMALIZE,
    "clip": p.CLIP_CRITERION_DEVICE,
    "retrieve": p.RETRIEVE_TOPK_DICT_TO_DEVICE,
}
STYLE_SEQUENTIAL_CELLS = {
    "data": DEVICE,
    "train_ae": [code(p.AE_CRITERION)],
    "train_classifier": [code(p.CLS_CRITERION)],
    "retrieve": TOKENIZER,
}

STYLE_ATTRIBUTES = {
    "encoder": p.ENCODER_ATTRIBUTES,
    "decoder": p.DECODER_ATTRIBUTES,
    "train_ae": p.TRAIN_AE_MANUAL_MSE,
    "train_classifier": p.TRAIN_CLASSIFIER_DETACH,
    "projection": p.HEAD_DIVIDE_BY_NORM,
    "clip": p.CLIP_TWO_LOGITS,
    "retrieve": p.RETRIEVE_DICT_TORCH_TENSOR,
}

STYLE_MODULELIST = {
    "encoder": p.ENCODER_MODULELIST,
    "decoder": p.DECODER_MODULELIST,
    "train_ae": p.TRAIN_AE_MODEL_ZERO_GRAD,
    "train_classifier": p.TRAIN_CLASSIFIER_PARAM_GROUPS,
    "projection": p.HEAD_LINALG_NORM,
    "clip": p.CLIP_EINSUM,
    "retrieve": p.RETRIEVE_NUMPY_ARGSORT,
}

STYLE_HELPERS = {
    "encoder": p.ENCODER_WITH_HELPER,
    "decoder": p.DECODER_WITH_HELPER,
    "train_ae": p.TRAIN_AE_ZERO_GRAD_LAST,
    "train_classifier": p.TRAIN_CLASSIFIER_FLATTEN_HELPER,
    "projection": p.HEAD_SEQUENTIAL,
    "clip": p.CLIP_WITH_HELPER,
    "retrieve": p.RETRIEVE_TOPK_INDICES,
}
STYLE_HELPERS_CELLS = {
    "data": DEVICE,
    "encoder": [code(p.CONV_BLOCK_HELPER)],
    "decoder": [code(p.DECONV_BLOCK_HELPER)],
    "train_classifier": [code(p.FLATTEN_HELPER), code(p.CLS_CRITERION)],
    "clip": [code(p.SYMMETRIC_LOSS_HELPER)],
}

CORRECT = [
    Student(
        "ok_colab_sequential",
        "Colab cruft (pip, drive.mount, %cd), own device/criterion/tokenizer cells, nn.Sequential with one shared "
        "ReLU, super(Encoder, self), roman-numeral report, CLIP accuracy in percent",
        STYLE_SEQUENTIAL,
        REPORT_ROMAN,
        CLIP_PERCENT,
        before={"imports": COLAB_START, **STYLE_SEQUENTIAL_CELLS},
    ),
    Student(
        "ok_attributes_plain",
        "one attribute per layer with F.relu, manual MSE, .detach() for the frozen encoder, x / x.norm(...), "
        "two logits matrices, dict comprehension with torch.tensor in retrieve_images, argsort(descending)",
        STYLE_ATTRIBUTES,
        REPORT_PLAIN,
        CLIP_PLAIN,
    ),
    Student(
        "ok_modulelist",
        "nn.ModuleList built from a channel list and a loop in forward, model.zero_grad(), param groups in "
        "Adam, torch.linalg.norm, einsum logits, NumPy argsort in retrieve_images, percentages",
        STYLE_MODULELIST,
        REPORT_PERCENT,
        "CLIP accuracy: 79.6%",
    ),
    Student(
        "ok_helpers_in_own_cells",
        "conv_block/deconv_block/Flatten/symmetric_ce helpers in their own cells, zero_grad after step, "
        "torch.set_grad_enabled, one-layer nn.Sequential head, report as a markdown table",
        STYLE_HELPERS,
        REPORT_TABLE + "\n\n| CLIP | 80.4% |",
        "CLIP accuracy: 80.4%",
        before=STYLE_HELPERS_CELLS,
    ),
    Student(
        "ok_ordered_dict",
        "nn.Sequential(OrderedDict(...)) with its own import cell, images.to(device), zero_grad(set_to_none), "
        "requires_grad = supervised, concatenated logits in one cross_entropy, torch.sort and a NumPy array "
        "of filenames returned, bold report",
        {
            "encoder": p.ENCODER_ORDERED_DICT,
            "decoder": p.DECODER_ORDERED_DICT,
            "train_ae": p.TRAIN_AE_DEVICE,
            "train_classifier": p.TRAIN_CLASSIFIER_REQUIRES_GRAD,
            "projection": p.HEAD_F_NORMALIZE,
            "clip": p.CLIP_CONCATENATED,
            "retrieve": p.RETRIEVE_SORT_NUMPY_ARRAY,
        },
        REPORT_BOLD,
        CLIP_BOLD,
        before={"imports": [code(p.NVIDIA_SMI)], "data": DEVICE},
        after={"imports": [code(p.EXTRA_IMPORTS), code(ORDERED_DICT_IMPORT)]},
    ),
    Student(
        "ok_relu_modules_shape_checks",
        "one nn.ReLU module reused in forward, nn.MSELoss()(...) inline, debugging cells that print shapes and "
        "parameter counts, answers in a new markdown cell under the template's blank lines",
        {
            "encoder": p.ENCODER_RELU_MODULES,
            "decoder": p.DECODER_RELU_MODULES,
            "train_ae": p.TRAIN_AE_MSE_MODULE,
            "train_classifier": p.TRAIN_CLASSIFIER_NO_GRAD,
            "projection": p.HEAD_DIVIDE_BY_NORM,
            "clip": p.CLIP_CRITERION_DEVICE,
            "retrieve": p.RETRIEVE_TOPK_DICT_TO_DEVICE,
        },
        REPORT_PLAIN,
        CLIP_PLAIN,
        before={"imports": [code(p.MATPLOTLIB)], "train_classifier": [code(p.CLS_CRITERION)]},
        after={
            "imports": DEVICE + TOKENIZER,
            "encoder": [code(p.SHAPE_CHECK_ENCODER)],
            "decoder": [code(p.SHAPE_CHECK_DECODER)],
            "projection": [code(p.SHAPE_CHECK_HEAD)],
            "clip_data": [code(p.PEEK_BATCH)],
        },
        report_cell=True,
    ),
    Student(
        "ok_jupytext_percent_export",
        "a .py file in jupytext percent format (`# %%`, markdown as comments), mixed styles, helpers in cells",
        {**STYLE_ATTRIBUTES, "decoder": p.DECODER_SEQUENTIAL_SHARED_RELU, "clip": p.CLIP_WITH_HELPER},
        REPORT_PLAIN,
        CLIP_PLAIN,
        before={"clip": [code(p.SYMMETRIC_LOSS_HELPER)]},
        export="percent",
    ),
    Student(
        "ok_nbconvert_script_export",
        "a .py file from `jupyter nbconvert --to script` (`# In[n]:`, magics as get_ipython() calls, markdown "
        "as comments)",
        {**STYLE_MODULELIST, "encoder": p.ENCODER_SEQUENTIAL_SHARED_RELU, "clip": p.CLIP_TWO_LOGITS},
        REPORT_ROMAN,
        CLIP_PERCENT,
        before={"imports": [code(p.PIP_INSTALL), code(p.MATPLOTLIB)]},
        export="script",
    ),
    Student(
        "ok_fixed_in_later_cells",
        "first tries of Encoder (kernel 3) and retrieve_images (ascending) left in place, fixed versions "
        "defined again in later cells",
        {**STYLE_SEQUENTIAL, "encoder": FIRST_TRY_ENCODER, "retrieve": FIRST_TRY_RETRIEVE},
        REPORT_PLAIN,
        CLIP_PLAIN,
        before=STYLE_SEQUENTIAL_CELLS,
        after={"decoder": [code(FIXED_ENCODER)], "retrieval_demo": [code(FIXED_RETRIEVE)]},
    ),
    Student(
        "ok_time_magics",
        "%%time on the training cells, !nvidia-smi, a seed cell, answers copied from the printed output",
        STYLE_ATTRIBUTES,
        REPORT_PRINTED,
        CLIP_PRINTED,
        before={"imports": [code(p.NVIDIA_SMI)], "data": [code(SEEDS)]},
        tweaks=[
            ("ae_cell", "ae = Autoencoder()", "%%time\nae = Autoencoder()"),
            ("clip_train", "clip_model = CLIPModel(", "%%time\nclip_model = CLIPModel("),
        ],
    ),
    Student(
        "ok_positional_flag_and_feat_dim",
        "feat_dim = 24 * 4 * 4 and device in their own cell used by the method cells, Method I called with "
        "the flag as a positional argument",
        STYLE_HELPERS | {"method1": METHOD1_POSITIONAL},
        REPORT_PLAIN,
        CLIP_EQUALS,
        before=STYLE_HELPERS_CELLS | {"train_ae": [code("feat_dim = 24 * 4 * 4\n")]},
        tweaks=[
            ("method2", "nn.Linear(24 * 4 * 4, 10).to(DEVICE)", "nn.Linear(feat_dim, 10).to(device)"),
            ("method3", "nn.Linear(24 * 4 * 4, 10).to(DEVICE)", "nn.Linear(feat_dim, 10).to(device)"),
        ],
    ),
    Student(
        "ok_hyperparameter_globals",
        "LR / WEIGHT_DECAY constants in their own cell, `supervised == True` comparisons, encoder.eval() for "
        "the frozen case, Sequential built from a layer list",
        {
            **STYLE_MODULELIST,
            "encoder": ENCODER_LAYER_LIST,
            "decoder": DECODER_LAYER_LIST,
            "train_classifier": TRAIN_CLASSIFIER_HYPERPARAMETERS,
        },
        REPORT_PERCENT,
        CLIP_PERCENT,
        after={"imports": [code(HYPERPARAMETERS)]},
    ),
    Student(
        "ok_import_aliases",
        "own aliases (import torch.nn.functional as fn, torch.optim as opt) used in the graded code, nested "
        "calls in forward, a conditional expression with .detach()",
        {
            **STYLE_ATTRIBUTES,
            "encoder": ENCODER_ALIAS,
            "train_ae": TRAIN_AE_ALIAS,
            "train_classifier": TRAIN_CLASSIFIER_ALIAS,
        },
        REPORT_ROMAN,
        CLIP_PLAIN,
        after={"imports": [code(ALIAS_IMPORTS)]},
    ),
    Student(
        "ok_lambda_and_loss_attribute",
        "an mse lambda in its own cell, model.train() in the loop, the loss function as a CLIPModel attribute, "
        "labels on the global device, a retrieve_images that prints the top scores",
        {
            **STYLE_HELPERS,
            "train_ae": TRAIN_AE_LAMBDA,
            "clip": CLIP_DEVICE_ATTRIBUTE,
            "retrieve": RETRIEVE_PRINTS,
        },
        REPORT_TABLE,
        CLIP_PLAIN,
        before=STYLE_HELPERS_CELLS | {"train_ae": [code(MSE_LAMBDA)], "retrieve": TOKENIZER},
    ),
    Student(
        "ok_template_flags_kept_comment",
        "flags written next to the template's comment, CLIP with the global criterion, topk indices cast to int",
        {**STYLE_ATTRIBUTES, "clip": p.CLIP_CRITERION_DEVICE, "retrieve": p.RETRIEVE_TOPK_INDICES},
        REPORT_BOLD,
        CLIP_PERCENT,
        before={"data": DEVICE, "clip": [code(p.CLIP_CRITERION)]},
        flags=(
            "supervised=False,  # TODO: True or False? -> False, frozen",
            "supervised=True,  # trained together",
            "supervised=False,  # random + frozen",
        ),
    ),
    Student(
        "ok_colab_percent_export",
        "jupytext .py export of a Colab notebook: drive.mount, !pip, %cd, helper cells, bold report",
        STYLE_HELPERS,
        REPORT_BOLD,
        CLIP_BOLD,
        before={"imports": COLAB_START, **STYLE_HELPERS_CELLS},
        export="percent",
    ),
    Student(
        "ok_modulelist_detach_mix",
        "ModuleList encoder, attribute decoder, .detach() classifier, F.normalize head, concatenated logits, "
        "argsort retrieval, report in a new cell",
        {
            **STYLE_ATTRIBUTES,
            "encoder": p.ENCODER_MODULELIST,
            "projection": p.HEAD_F_NORMALIZE,
            "clip": p.CLIP_CONCATENATED,
        },
        REPORT_PERCENT,
        CLIP_PERCENT,
        report_cell=True,
    ),
    Student(
        "ok_ordered_dict_einsum",
        "OrderedDict layers, manual MSE, set_grad_enabled with a Flatten helper, einsum logits, topk + list "
        "comprehension over a tokenizer dict moved to the device",
        {
            "encoder": p.ENCODER_ORDERED_DICT,
            "decoder": p.DECODER_ORDERED_DICT,
            "train_ae": p.TRAIN_AE_MANUAL_MSE,
            "train_classifier": p.TRAIN_CLASSIFIER_FLATTEN_HELPER,
            "projection": p.HEAD_LINALG_NORM,
            "clip": p.CLIP_EINSUM,
            "retrieve": p.RETRIEVE_TOPK_DICT_TO_DEVICE,
        },
        REPORT_ROMAN,
        CLIP_PRINTED,
        before={
            "imports": [code(ORDERED_DICT_IMPORT)],
            "data": DEVICE,
            "train_classifier": [code(p.FLATTEN_HELPER), code(p.CLS_CRITERION)],
            "retrieve": TOKENIZER,
        },
    ),
    Student(
        "ok_script_export_helpers",
        "nbconvert script export of the helper-cell style, !nvidia-smi translated to get_ipython().system",
        STYLE_HELPERS,
        REPORT_TABLE,
        CLIP_PERCENT,
        before={"imports": [code(p.NVIDIA_SMI)], **STYLE_HELPERS_CELLS},
        export="script",
    ),
    Student(
        "ok_shared_relu_two_logits",
        "shared-ReLU Sequential encoder and decoder, zero_grad after step, param groups, x / x.norm, two "
        "logits matrices with no_grad around the text encoder, argsort(descending) retrieval",
        {
            **STYLE_SEQUENTIAL,
            "train_ae": p.TRAIN_AE_ZERO_GRAD_LAST,
            "train_classifier": p.TRAIN_CLASSIFIER_PARAM_GROUPS,
            "projection": p.HEAD_DIVIDE_BY_NORM,
            "clip": p.CLIP_TWO_LOGITS,
            "retrieve": p.RETRIEVE_DICT_TORCH_TENSOR,
        },
        REPORT_PLAIN,
        CLIP_BOLD,
    ),
    Student(
        "ok_layer_list_requires_grad",
        "layer lists, requires_grad toggled by the flag, NumPy array of filenames from torch.sort, answers in "
        "percent in a new cell",
        {
            **STYLE_MODULELIST,
            "encoder": ENCODER_LAYER_LIST,
            "decoder": DECODER_LAYER_LIST,
            "train_ae": p.TRAIN_AE_DEVICE,
            "train_classifier": p.TRAIN_CLASSIFIER_REQUIRES_GRAD,
            "retrieve": p.RETRIEVE_SORT_NUMPY_ARRAY,
        },
        REPORT_PERCENT,
        CLIP_PERCENT,
        before={"data": DEVICE},
        after={"imports": [code(p.EXTRA_IMPORTS)]},
        report_cell=True,
    ),
    Student(
        "ok_everything_in_one_notebook_style",
        "the most common notebook: Colab mount, device, criterion reused by train_classifier and CLIPModel, "
        "shape checks, tokenizer cell, topk and a list comprehension, plain report",
        {**STYLE_SEQUENTIAL, "encoder": p.ENCODER_ATTRIBUTES, "decoder": p.DECODER_ATTRIBUTES},
        REPORT_PLAIN,
        CLIP_PLAIN,
        before={"imports": [code(p.COLAB_MOUNT)], **STYLE_SEQUENTIAL_CELLS},
        after={"encoder": [code(p.SHAPE_CHECK_ENCODER)], "projection": [code(p.SHAPE_CHECK_HEAD)]},
    ),
    Student(
        "ok_windows_tabs_future_annotations",
        "saved on Windows: CR LF line ends and tab indents, `from __future__ import annotations` and Tensor "
        "type hints, super(Class, self), positional Conv2d arguments, helpers (`up`, `unit_rows`) defined in "
        "the cells after the classes that call them, report answers in a cell of their own",
        {
            **STYLE_ATTRIBUTES,
            "encoder": p.ENCODER_TABS_ANNOTATED,
            "decoder": p.DECODER_LATER_HELPER,
            "projection": p.HEAD_LATER_HELPER,
        },
        p.crlf(REPORT_BOLD),
        p.crlf(CLIP_EQUALS),
        before={"imports": [code(p.FUTURE_ANNOTATIONS)]},
        after={"decoder": [code(p.UP_HELPER)], "projection": [code(p.UNIT_ROWS_HELPER)]},
        report_cell=True,
    ),
    Student(
        "ok_colab_gpu_hard_coded",
        "written on Colab's GPU runtime: device = torch.device(\"cuda\") and a GPU name printed, model.cuda() and "
        "images.cuda() in train_ae, .to(\"cuda:0\") in train_classifier, torch.arange(..., device=\"cuda\") "
        "in CLIPModel, .to(device) in retrieve_images (the grader has no GPU)",
        {
            **STYLE_SEQUENTIAL,
            "train_ae": p.TRAIN_AE_CUDA,
            "train_classifier": p.TRAIN_CLASSIFIER_CUDA,
            "clip": p.CLIP_CUDA_LABELS,
        },
        REPORT_PLAIN,
        CLIP_PLAIN,
        before={"data": [code(p.CUDA_CELL)], "retrieve": TOKENIZER},
    ),
]

BUGGY = [
    Student(
        "bug_encoder_no_last_relu",
        "7.1.1: no ReLU after the last convolution (features can be negative)",
        {**STYLE_ATTRIBUTES, "encoder": p.BUG_ENCODER_NO_LAST_RELU},
        REPORT_PLAIN,
        CLIP_PLAIN,
    ),
    Student(
        "bug_decoder_no_sigmoid",
        "7.1.2: no Sigmoid at the end (pixels outside [0, 1])",
        {**STYLE_SEQUENTIAL, "decoder": p.BUG_DECODER_NO_SIGMOID},
        REPORT_ROMAN,
        CLIP_PERCENT,
        before=STYLE_SEQUENTIAL_CELLS,
    ),
    Student(
        "bug_train_ae_no_zero_grad",
        "7.1.3: optimizer.zero_grad() forgotten, gradients accumulate over the epoch",
        {**STYLE_MODULELIST, "train_ae": p.BUG_TRAIN_AE_NO_ZERO_GRAD},
        REPORT_PERCENT,
        CLIP_PERCENT,
    ),
    Student(
        "bug_train_ae_redefined_with_l1",
        "7.1.3: a correct train_ae, then a later cell redefines it with an L1 loss (the last definition counts)",
        {**STYLE_SEQUENTIAL, "train_ae": CORRECT_TRAIN_AE_FIRST},
        REPORT_PLAIN,
        CLIP_PLAIN,
        before=STYLE_SEQUENTIAL_CELLS,
        after={"ae_cell": [code(LATER_L1_TRAIN_AE)]},
    ),
    Student(
        "bug_classifier_encoder_not_frozen",
        "7.1.4: the encoder's parameters are always in the optimizer, supervised=False trains the encoder too",
        {**STYLE_SEQUENTIAL, "train_classifier": p.BUG_TRAIN_CLASSIFIER_NOT_FROZEN},
        REPORT_ROMAN,
        CLIP_PLAIN,
        before=STYLE_SEQUENTIAL_CELLS,
    ),
    Student(
        "bug_classifier_view_batch_size",
        "7.1.4: features.view(batch_size, -1) with the global batch_size = 128: wrong on every partial batch "
        "(the last batch of 5,000 training images holds 8)",
        {**STYLE_HELPERS, "train_classifier": p.BUG_TRAIN_CLASSIFIER_VIEW_BATCH_SIZE},
        REPORT_TABLE,
        CLIP_PERCENT,
        before=STYLE_HELPERS_CELLS | {"train_classifier": [code(p.BATCH_SIZE_CELL)]},
    ),
    Student(
        "bug_classifier_supervised_encoder_idle",
        "7.1.4: supervised=True computes gradients for the encoder but only the classifier is in the optimizer",
        {**STYLE_ATTRIBUTES, "train_classifier": p.BUG_TRAIN_CLASSIFIER_SUPERVISED_ENCODER_IDLE},
        REPORT_PLAIN,
        CLIP_PLAIN,
    ),
    Student(
        "bug_method_flags_swapped",
        "7.1.4: Method I trained with supervised=True and Method II with supervised=False",
        STYLE_MODULELIST,
        REPORT_PERCENT,
        CLIP_PERCENT,
        flags=("supervised=True,", "supervised=False,", "supervised=False,"),
    ),
    Student(
        "bug_report_wrong_order",
        "7.1.5: Methods I and II reported in the wrong order (II below I)",
        STYLE_ATTRIBUTES,
        REPORT_WRONG_ORDER,
        CLIP_PLAIN,
    ),
    Student(
        "bug_head_not_normalised",
        "7.2.1: the projection head returns the linear layer's output without L2 normalisation",
        {**STYLE_SEQUENTIAL, "projection": p.BUG_HEAD_NOT_NORMALISED},
        REPORT_ROMAN,
        CLIP_PERCENT,
        before=STYLE_SEQUENTIAL_CELLS,
    ),
    Student(
        "bug_head_whole_matrix_norm",
        "7.2.1: x / x.norm() divides by the norm of the whole batch instead of each row's",
        {**STYLE_ATTRIBUTES, "projection": p.BUG_HEAD_WHOLE_MATRIX_NORM},
        REPORT_PLAIN,
        CLIP_PLAIN,
    ),
    Student(
        "bug_clip_one_direction",
        "7.2.2: only the image-to-text cross-entropy (rows), not the text-to-image one",
        {**STYLE_MODULELIST, "clip": p.BUG_CLIP_ONE_DIRECTION},
        REPORT_PERCENT,
        CLIP_PERCENT,
    ),
    Student(
        "bug_clip_times_temperature",
        "7.2.2: logits multiplied by the temperature instead of divided",
        {**STYLE_SEQUENTIAL, "clip": p.BUG_CLIP_TIMES_TEMPERATURE},
        REPORT_PLAIN,
        CLIP_PLAIN,
        before=STYLE_SEQUENTIAL_CELLS,
    ),
    Student(
        "bug_clip_detached_image_features",
        "7.2.2: .detach() on the image encoder's output, so the image encoder is never trained",
        {**STYLE_HELPERS, "clip": p.BUG_CLIP_DETACHED_IMAGES},
        REPORT_TABLE,
        CLIP_PERCENT,
        before=STYLE_HELPERS_CELLS,
    ),
    Student(
        "bug_retrieve_ascending",
        "7.2.4: torch.argsort(scores)[:k], the k worst images",
        {**STYLE_ATTRIBUTES, "retrieve": p.BUG_RETRIEVE_ASCENDING},
        REPORT_PLAIN,
        CLIP_PLAIN,
    ),
    Student(
        "bug_retrieve_worst_first",
        "7.2.4: np.argsort(scores)[-k:], the right images but the best last",
        {**STYLE_SEQUENTIAL, "retrieve": p.BUG_RETRIEVE_WORST_FIRST},
        REPORT_ROMAN,
        CLIP_PERCENT,
        before=STYLE_SEQUENTIAL_CELLS,
    ),
]

STUDENTS = CORRECT + BUGGY
