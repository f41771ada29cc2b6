"""A real grade of the student template filled in the way students write it: graded functions that use their
own top-level `device`, `mse`, `feat_dim`, `criterion` and `tokenizer` lose no point for it."""

from __future__ import annotations

import json

import nbformat
from nbformat.v4 import new_code_cell

from autograder.assignment.build import TEMPLATE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT, read_source_cells, render
from autograder.grading import grade
from autograder.results.gradescope import from_markdown
from tests.corpus.harness import explain, scores_by_component

TRAIN_AE = """def train_ae(model, dataloader, epochs=100):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="autoencoder"):
        epoch_loss = 0.0
        for images, _ in dataloader:
            images = images.to(device)
            optimizer.zero_grad()
            loss = mse(model(images), images)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return model, loss_traj"""

TRAIN_CLASSIFIER = """def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):
    params = list(cls.parameters()) + (list(encoder.parameters()) if supervised else [])
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="classifier"):
        epoch_loss = 0.0
        for images, labels in dataloader:
            images, labels = images.to(device), labels.to(device)
            with torch.set_grad_enabled(supervised):
                features = encoder(images)
            loss = criterion(cls(features.view(-1, feat_dim)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return cls, loss_traj"""

RETRIEVE_IMAGES = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    tokens = tokenizer([query], padding=True, truncation=True, max_length=64, return_tensors="pt")
    text = model.text_encoder(
        input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
    )
    scores = (image_embeddings.to(device) @ model.text_projection(text).T).squeeze(1)
    best = torch.topk(scores, k).indices.cpu().numpy()
    return np.asarray(image_filenames, dtype=object)[best].tolist()"""

STUDENT_CELLS = {  # graded function -> (its cell, the cell the student put before it)
    "train_ae": (TRAIN_AE, "mse = nn.MSELoss()"),
    "train_classifier": (TRAIN_CLASSIFIER, "feat_dim = 24 * 4 * 4\ncriterion = nn.CrossEntropyLoss()"),
    "retrieve_images": (RETRIEVE_IMAGES, "tokenizer = AutoTokenizer.from_pretrained(SETUP.text_model)"),
}
DEVICE_CELL = 'device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")'
SUPERVISED_TODO = "supervised=...,  # TODO: True or False?"


def student_notebook(path):
    """The template with every graded cell filled (the reference's code for the components not under test),
    the three method cells' flags set, and the student's own top-level helper cells."""
    notebook = nbformat.read(REPO_ROOT / TEMPLATE_NOTEBOOK, as_version=4)
    solutions = iter(render(cell.text, solution=True) for cell in read_source_cells() if "graded" in cell.tags)
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and "graded" in cell.metadata.get("tags", []):
            cell.source = next(solutions)
            name = next((name for name in STUDENT_CELLS if f"def {name}(" in cell.source), None)
            if name is not None:
                cell.source, helpers = STUDENT_CELLS[name]
                cells.append(new_code_cell(helpers))
            if cell.source.startswith("class Encoder"):
                cells.append(new_code_cell(DEVICE_CELL))
        elif SUPERVISED_TODO in cell.source:
            cell.source = cell.source.replace(SUPERVISED_TODO, f"supervised={'# Method II:' in cell.source},")
        cells.append(cell)
    notebook.cells = cells
    nbformat.write(notebook, path)
    return path


def test_graded_functions_that_use_their_own_top_level_names_lose_no_point(synthetic, tmp_path):
    path = student_notebook(tmp_path / "student.ipynb")
    part1 = tmp_path / "part1.json"
    grade(path, part1, suite="all", only="7.1")  # with the training tests of 7.1.3 and 7.1.4
    document = json.loads(part1.read_text())
    scores = scores_by_component(document)
    assert scores["7.1.3"] == (1.0, 1.0) and scores["7.1.4"] == (1.0, 1.0), explain(document)
    ran = {test["number"] for test in document["tests"]}
    assert {"7.1.3.3", "7.1.4.4", "7.1.4.5"} <= ran  # the training tests
    summary = from_markdown(document["output"])  # the results' Markdown, read back as the text it shows
    assert "`criterion = nn.CrossEntropyLoss()` was run by the grader, because `train_classifier`" in summary

    part2 = tmp_path / "part2.json"
    grade(path, part2, suite="all", only="7.2.4", training=False)
    document = json.loads(part2.read_text())
    assert scores_by_component(document)["7.2.4"] == (1.0, 1.0), explain(document)
