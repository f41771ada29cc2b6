"""Part 7.2 of the corpus: the reference with one realistic bug each, and correct solutions in other styles.

Test numbers: 7.2.1.1 one Linear layer, .2 unit rows, .3 equal to the reference, .4 gradients;
7.2.2.1 structure, .2 loss equals the symmetric InfoNCE, .3 scalar loss on the CPU, .4 gradients, .5 no loops,
.6 linear probe and held-out caption matching after training; 7.2.3.1 number reported, .2 plausible;
7.2.4.1 contract, .2 k = 1, 9 and all, .3 no loops.
"""

from tests.corpus.harness import Mutant, Variant

HEAD_FORWARD = "return F.normalize(self.projection(x), dim=-1)"
HEAD_LAYER = "self.projection = nn.Linear(embedding_dim, projection_dim)"
LOGITS = "logits = image_embeddings @ text_embeddings.T / self.temperature"
TARGETS = "targets = torch.arange(logits.shape[0], device=logits.device)"
IMAGES_LOSS = "images_loss = F.cross_entropy(logits, targets)"
LOSS_TAIL = """\
        images_loss = F.cross_entropy(logits, targets)
        texts_loss = F.cross_entropy(logits.T, targets)
        return (images_loss + texts_loss) / 2"""
SYMMETRIC_MEAN = "return (images_loss + texts_loss) / 2"
KEEP_TEMPERATURE = "self.temperature = temperature"
TOKENS = 'tokens = TOKENIZER([query], padding=True, truncation=True, max_length=64, return_tensors="pt")'
TOPK = "best = torch.topk(scores, k).indices.cpu().numpy()"
SCORES = "scores = (image_embeddings @ query_embedding.T).squeeze(1)"
FILENAMES = "return np.asarray(image_filenames, dtype=object)[best].tolist()"
REPORT = "CLIP accuracy: 0.802"

MUTANTS = [
    Mutant("head-not-normalised", "7.2.1", [(HEAD_FORWARD, "return self.projection(x)")], ["7.2.1.2", "7.2.1.3"]),
    Mutant(
        "head-normalised-over-the-batch",
        "7.2.1",
        [(HEAD_FORWARD, "return F.normalize(self.projection(x), dim=0)")],
        ["7.2.1.2", "7.2.1.3"],
    ),
    Mutant(
        "head-with-relu",
        "7.2.1",
        [(HEAD_FORWARD, "return F.normalize(F.relu(self.projection(x)), dim=-1)")],
        ["7.2.1.3"],
    ),
    Mutant(
        "head-with-two-layers",
        "7.2.1",
        [
            (
                HEAD_LAYER,
                "self.projection = nn.Sequential(\n"
                "            nn.Linear(embedding_dim, projection_dim),\n"
                "            nn.ReLU(),\n"
                "            nn.Linear(projection_dim, projection_dim),\n"
                "        )",
            )
        ],
        ["7.2.1.1", "7.2.1.3"],
    ),
    Mutant("head-detached", "7.2.1", [(HEAD_FORWARD, HEAD_FORWARD + ".detach()")], ["7.2.1.4"]),
    Mutant(
        "temperature-multiplied",
        "7.2.2",
        [(LOGITS, LOGITS.replace("/", "*"))],
        ["7.2.2.2", "7.2.2.6"],
        breaks_learning=True,
        reasons={"7.2.2.6": "held-out validation images to their own caption"},
    ),
    Mutant("one-direction-only", "7.2.2", [(SYMMETRIC_MEAN, "return images_loss")], ["7.2.2.2"]),
    Mutant("directions-added", "7.2.2", [(SYMMETRIC_MEAN, "return images_loss + texts_loss")], ["7.2.2.2"]),
    Mutant(
        "targets-all-zero",
        "7.2.2",
        [(TARGETS, "targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)")],
        ["7.2.2.2"],
    ),
    Mutant(
        "text-encoder-unfrozen",
        "7.2.2",
        [
            (
                KEEP_TEMPERATURE,
                KEEP_TEMPERATURE + "\n        for parameter in self.text_encoder.parameters():\n"
                "            parameter.requires_grad = True",
            )
        ],
        ["7.2.2.1", "7.2.2.4"],
    ),
    Mutant(
        "image-features-without-gradient",
        "7.2.2",
        [
            (
                'image_features = self.image_encoder(batch["image"])',
                'with torch.no_grad():\n            image_features = self.image_encoder(batch["image"])',
            )
        ],
        ["7.2.2.4"],
    ),
    Mutant(
        "image-head-of-fixed-size",
        "7.2.2",
        [("ProjectionHead(embedding_dim=image_embedding)", "ProjectionHead(embedding_dim=2048)")],
        ["7.2.2.1", "7.2.2.2", "7.2.2.3", "7.2.2.4", "7.2.2.5"],
    ),
    Mutant(
        "clip-loss-in-a-loop",
        "7.2.2",
        [
            (
                IMAGES_LOSS,
                "images_loss = 0\n        for i in range(logits.shape[0]):\n"
                "            images_loss = images_loss + F.cross_entropy(logits[i], targets[i]) / logits.shape[0]",
            )
        ],
        ["7.2.2.5"],
    ),
    Mutant(
        "clip-report-without-number",
        "7.2.3",
        [(REPORT, "CLIP accuracy: much better than the autoencoder")],
        ["7.2.3.1", "7.2.3.2"],
    ),
    Mutant("clip-report-method-3-copied", "7.2.3", [(REPORT, "CLIP accuracy: 0.258")], ["7.2.3.2"]),
    Mutant("clip-report-percent-without-sign", "7.2.3", [(REPORT, "CLIP accuracy: 80.2")], ["7.2.3.2"]),
    Mutant(
        "retrieve-ascending",
        "7.2.4",
        [(TOPK, "best = torch.topk(scores, k, largest=False).indices.cpu().numpy()")],
        ["7.2.4.1", "7.2.4.2", "7.2.4.3"],
    ),
    Mutant(
        "retrieve-off-by-one-k",
        "7.2.4",
        [(TOPK, "best = torch.topk(scores, k - 1).indices.cpu().numpy()")],
        ["7.2.4.1", "7.2.4.2", "7.2.4.3"],
    ),
    Mutant(
        "retrieve-skips-the-best",
        "7.2.4",
        [(TOPK, "best = torch.argsort(scores, descending=True)[1 : k + 1].cpu().numpy()")],
        ["7.2.4.1", "7.2.4.2", "7.2.4.3"],
    ),
    Mutant(
        "retrieve-returns-indices", "7.2.4", [(FILENAMES, "return best.tolist()")], ["7.2.4.1", "7.2.4.2", "7.2.4.3"]
    ),
    Mutant(
        "retrieve-scores-in-a-loop",
        "7.2.4",
        [(SCORES, "scores = torch.stack([embedding @ query_embedding[0] for embedding in image_embeddings])")],
        ["7.2.4.3"],
    ),
    Mutant(
        "retrieve-ranks-with-a-python-sort-key",
        "7.2.4",
        [(TOPK, "best = sorted(range(len(scores)), key=lambda i: -float(scores[i]))[:k]")],
        ["7.2.4.3"],
    ),
    Mutant(
        "retrieve-loop-hidden-from-tracing",
        "7.2.4",
        [
            (
                SCORES,
                "getattr(__import__('sys'), 'set' + 'trace')(None)\n"
                "    scores = torch.stack([embedding @ query_embedding[0] for embedding in image_embeddings])",
            )
        ],
        ["7.2.4.3"],
    ),
    Mutant(
        "retrieve-loop-hidden-by-pausing-the-tracer",
        "7.2.4",
        [
            (
                SCORES,
                "import sys\n"
                "    tracer = sys.gettrace()\n"
                "    sys.settrace(None)\n"
                "    scores = torch.stack([embedding @ query_embedding[0] for embedding in image_embeddings])\n"
                "    sys.settrace(tracer)",
            )
        ],
        ["7.2.4.3"],
    ),
    Mutant(
        "clip-logits-in-a-loop-over-rows",
        "7.2.2",
        [
            (
                LOGITS,
                "logits = torch.stack([row @ text_embeddings.T for row in image_embeddings]) / self.temperature",
            )
        ],
        ["7.2.2.5"],
    ),
]

VARIANTS = [
    Variant(
        "7.2-tokenizer-dict-comprehension-top-k-list-comprehension",
        [
            (
                TOKENS,
                "encoded = TOKENIZER([query], padding=True, truncation=True, max_length=64)\n"
                "    tokens = {key: torch.tensor(v) for key, v in encoded.items()}",
            ),
            (TOPK, "top = torch.topk(scores, k).indices.tolist()"),
            (FILENAMES, "return [image_filenames[i] for i in top]"),
        ],
    ),
    Variant("7.2-numpy-array-of-filenames", [(FILENAMES, "return np.asarray(image_filenames)[best]")]),
    Variant(
        "7.2-norm-division-argsort-percent",
        [
            (HEAD_FORWARD, "x = self.projection(x)\n        return x / x.norm(dim=-1, keepdim=True)"),
            (TOPK, "best = torch.argsort(scores, descending=True)[:k].cpu().numpy()"),
            (FILENAMES, "return tuple(np.asarray(image_filenames, dtype=object)[best])"),
            (REPORT, "**CLIP accuracy:** 80.2%"),
        ],
    ),
    Variant(
        "7.2-second-product-loss-module-temperature-buffer",
        [
            (KEEP_TEMPERATURE, 'self.register_buffer("temperature", torch.tensor(temperature))'),
            (
                LOGITS + "\n" + "        " + TARGETS + "\n" + LOSS_TAIL,
                "logits_per_image = image_embeddings @ text_embeddings.T / self.temperature\n"
                "        logits_per_text = text_embeddings @ image_embeddings.T / self.temperature\n"
                "        labels = torch.arange(len(image_embeddings), device=image_embeddings.device)\n"
                "        criterion = nn.CrossEntropyLoss()\n"
                "        return 0.5 * (criterion(logits_per_image, labels) + criterion(logits_per_text, labels))",
            ),
        ],
        trains="7.2.2",
    ),
    Variant(
        "7.2-sequential-head-query-first-numpy-names",
        [
            (HEAD_LAYER, "self.layers = nn.Sequential(nn.Linear(embedding_dim, projection_dim))"),
            (HEAD_FORWARD, "return F.normalize(self.layers(x), p=2, dim=1)"),
            (SCORES, "scores = (query_embedding @ image_embeddings.T)[0]"),
            (TOPK, "best = scores.topk(k).indices.cpu().numpy()"),
            (FILENAMES, "return list(np.array(image_filenames)[best])"),
        ],
    ),
    Variant(
        "7.2-log-softmax-diagonal",
        [
            (
                LOSS_TAIL,
                "        images_loss = -F.log_softmax(logits, dim=1).diagonal().mean()\n"
                "        texts_loss = -F.log_softmax(logits, dim=0).diagonal().mean()\n"
                "        return (images_loss + texts_loss) / 2",
            ),
        ],
        trains="7.2.2",
    ),
]
