"""Code that students of this course write for each graded cell, in several styles, and the cells they add.

Each constant is the whole source of one cell as a student left it. Correct styles first, then the bugs
(their names start with `BUG_`). `build.py` puts them into copies of the student template.
"""

# ---- cells students add -------------------------------------------------------------------------------

DEVICE_CELL = 'device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")\nprint(device)\n'

COLAB_MOUNT = "from google.colab import drive\ndrive.mount('/content/drive')\n"
COLAB_CD = "%cd /content/drive/MyDrive/EECS442/ps7\n!ls\n"
PIP_INSTALL = "!pip install -q transformers\n"
NVIDIA_SMI = "!nvidia-smi\n"
MATPLOTLIB = "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
EXTRA_IMPORTS = (
    "import torch.optim as optim\nfrom torch import nn\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
)

SHAPE_CHECK_ENCODER = """# sanity check
enc = Encoder()
dummy = torch.randn(5, 3, 64, 64)
print(enc(dummy).shape)
print("params:", sum(p.numel() for p in enc.parameters()))
"""

SHAPE_CHECK_DECODER = """dec = Decoder()
out = dec(torch.rand(5, 24, 4, 4))
print(out.shape, out.min().item(), out.max().item())
print(sum(p.numel() for p in dec.parameters() if p.requires_grad))
"""

SHAPE_CHECK_HEAD = """head = ProjectionHead(2048)
z = head(torch.randn(4, 2048))
print(z.shape, z.norm(dim=1))
"""

PEEK_BATCH = """batch = next(iter(clip_batches))
for key, value in batch.items():
    print(key, value.shape, value.dtype)
"""

# ---- 7.1.1 Encoder ------------------------------------------------------------------------------------

ENCODER_SEQUENTIAL_SHARED_RELU = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super(Encoder, self).__init__()
        relu = nn.ReLU()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, 12, 4, 2, 1), relu,
            nn.Conv2d(12, 24, 4, 2, 1), relu,
            nn.Conv2d(24, 48, 4, 2, 1), relu,
            nn.Conv2d(48, 24, 4, 2, 1), relu,
        )

    def forward(self, x):
        return self.layers(x)
"""

ENCODER_ATTRIBUTES = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 12, kernel_size=4, stride=2, padding=1)  # 64 -> 32
        self.c2 = nn.Conv2d(12, 24, kernel_size=4, stride=2, padding=1)  # 32 -> 16
        self.c3 = nn.Conv2d(24, 48, kernel_size=4, stride=2, padding=1)  # 16 -> 8
        self.c4 = nn.Conv2d(48, 24, kernel_size=4, stride=2, padding=1)  # 8 -> 4

    def forward(self, x):
        x = self.c1(x)
        x = F.relu(x)
        x = self.c2(x)
        x = F.relu(x)
        x = self.c3(x)
        x = F.relu(x)
        x = self.c4(x)
        x = F.relu(x)
        return x
"""

ENCODER_MODULELIST = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        channels = [in_channels, 12, 24, 48, 24]
        self.convs = nn.ModuleList(
            [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1) for c_in, c_out in zip(channels, channels[1:])]
        )

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x
"""

CONV_BLOCK_HELPER = """def conv_block(c_in, c_out):
    # conv that halves the spatial size, then relu
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU(inplace=True))
"""

ENCODER_WITH_HELPER = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.net = nn.Sequential(
            conv_block(in_channels, 12),
            conv_block(12, 24),
            conv_block(24, 48),
            conv_block(48, 24),
        )

    def forward(self, x):
        out = self.net(x)
        return out
"""

ENCODER_ORDERED_DICT = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super(Encoder, self).__init__()
        self.encoder = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 12, 4, stride=2, padding=1)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(12, 24, 4, stride=2, padding=1)),
            ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(24, 48, 4, stride=2, padding=1)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(48, 24, 4, stride=2, padding=1)),
            ("relu4", nn.ReLU()),
        ]))

    def forward(self, x):
        return self.encoder(x)
"""

ENCODER_RELU_MODULES = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        self.conv_1 = nn.Conv2d(in_channels, 12, 4, 2, 1)
        self.conv_2 = nn.Conv2d(12, 24, 4, 2, 1)
        self.conv_3 = nn.Conv2d(24, 48, 4, 2, 1)
        self.conv_4 = nn.Conv2d(48, 24, 4, 2, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.conv_1(x))
        x = self.relu(self.conv_2(x))
        x = self.relu(self.conv_3(x))
        x = self.relu(self.conv_4(x))
        return x
"""

BUG_ENCODER_NO_LAST_RELU = """class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super(Encoder, self).__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, 12, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(12, 24, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(24, 48, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(48, 24, 4, 2, 1),
        )

    def forward(self, x):
        return self.model(x)
"""

# ---- 7.1.2 Decoder ------------------------------------------------------------------------------------

DECODER_SEQUENTIAL_SHARED_RELU = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super(Decoder, self).__init__()
        relu = nn.ReLU()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(24, 48, 4, 2, 1), relu,
            nn.ConvTranspose2d(48, 24, 4, 2, 1), relu,
            nn.ConvTranspose2d(24, 12, 4, 2, 1), relu,
            nn.ConvTranspose2d(12, out_channels, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.layers(x)
"""

DECODER_ATTRIBUTES = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        self.t1 = nn.ConvTranspose2d(24, 48, kernel_size=4, stride=2, padding=1)
        self.t2 = nn.ConvTranspose2d(48, 24, kernel_size=4, stride=2, padding=1)
        self.t3 = nn.ConvTranspose2d(24, 12, kernel_size=4, stride=2, padding=1)
        self.t4 = nn.ConvTranspose2d(12, out_channels, kernel_size=4, stride=2, padding=1)

    def forward(self, x):
        x = F.relu(self.t1(x))
        x = F.relu(self.t2(x))
        x = F.relu(self.t3(x))
        x = torch.sigmoid(self.t4(x))
        return x
"""

DECODER_MODULELIST = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        channels = [24, 48, 24, 12, out_channels]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(channels[i], channels[i + 1], 4, stride=2, padding=1) for i in range(4)
        )

    def forward(self, x):
        for i, deconv in enumerate(self.deconvs):
            x = deconv(x)
            if i < len(self.deconvs) - 1:
                x = F.relu(x)
        return x.sigmoid()
"""

DECONV_BLOCK_HELPER = """def deconv_block(c_in, c_out, last=False):
    # transposed conv that doubles the spatial size; sigmoid after the last one so pixels are in [0, 1]
    activation = nn.Sigmoid() if last else nn.ReLU(inplace=True)
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1), activation)
"""

DECODER_WITH_HELPER = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        self.net = nn.Sequential(
            deconv_block(24, 48),
            deconv_block(48, 24),
            deconv_block(24, 12),
            deconv_block(12, out_channels, last=True),
        )

    def forward(self, x):
        return self.net(x)
"""

DECODER_ORDERED_DICT = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super(Decoder, self).__init__()
        self.decoder = nn.Sequential(OrderedDict([
            ("deconv1", nn.ConvTranspose2d(24, 48, 4, stride=2, padding=1)),
            ("relu1", nn.ReLU()),
            ("deconv2", nn.ConvTranspose2d(48, 24, 4, stride=2, padding=1)),
            ("relu2", nn.ReLU()),
            ("deconv3", nn.ConvTranspose2d(24, 12, 4, stride=2, padding=1)),
            ("relu3", nn.ReLU()),
            ("deconv4", nn.ConvTranspose2d(12, out_channels, 4, stride=2, padding=1)),
            ("sigmoid", nn.Sigmoid()),
        ]))

    def forward(self, x):
        return self.decoder(x)
"""

DECODER_RELU_MODULES = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        self.up_1 = nn.ConvTranspose2d(24, 48, 4, 2, 1)
        self.up_2 = nn.ConvTranspose2d(48, 24, 4, 2, 1)
        self.up_3 = nn.ConvTranspose2d(24, 12, 4, 2, 1)
        self.up_4 = nn.ConvTranspose2d(12, 3, 4, 2, 1)
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        x = self.relu(self.up_1(x))
        x = self.relu(self.up_2(x))
        x = self.relu(self.up_3(x))
        return self.sigmoid(self.up_4(x))
"""

BUG_DECODER_NO_SIGMOID = """class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super(Decoder, self).__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose2d(24, 48, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(48, 24, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(24, 12, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(12, out_channels, 4, 2, 1),
        )

    def forward(self, x):
        return self.model(x)
"""

# ---- 7.1.3 train_ae (the student fills the loop body of the template's skeleton) ----------------------

AE_CRITERION = "ae_criterion = nn.MSELoss()\n"


def train_ae(body: str, setup: str = "") -> str:
    """The template's train_ae with `body` (indented 12 spaces) where the TODO was, after `setup` (4 spaces)
    at its top."""
    return (
        "def train_ae(model, dataloader, epochs=100):\n"
        f"{setup}"
        "    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
        "    loss_traj = []\n"
        '    for epoch in tqdm(range(epochs), desc="autoencoder"):\n'
        "        epoch_loss = 0.0\n"
        "        for images, _ in dataloader:\n"
        f"{body}"
        "            epoch_loss += loss.item()\n"
        "        loss_traj.append(epoch_loss / len(dataloader))\n"
        "    return model, loss_traj\n"
    )


TRAIN_AE_CRITERION = train_ae(
    """            optimizer.zero_grad()
            outputs = model(images)
            loss = ae_criterion(outputs, images)
            loss.backward()
            optimizer.step()
"""
)

TRAIN_AE_MANUAL_MSE = train_ae(
    """            recon = model(images)
            loss = ((recon - images) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
"""
)

TRAIN_AE_MODEL_ZERO_GRAD = train_ae(
    """            model.zero_grad()
            loss = F.mse_loss(model(images), images)
            loss.backward()
            optimizer.step()
"""
)

TRAIN_AE_DEVICE = train_ae(
    """            images = images.to(device)
            optimizer.zero_grad(set_to_none=True)
            x_hat = model(images)
            loss = nn.functional.mse_loss(x_hat, images)
            loss.backward()
            optimizer.step()
"""
)

TRAIN_AE_ZERO_GRAD_LAST = train_ae(
    """            reconstructed = model(images)
            loss = F.mse_loss(images, reconstructed)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
"""
)

TRAIN_AE_MSE_MODULE = train_ae(
    """            optimizer.zero_grad()
            loss = nn.MSELoss()(model(images), images)
            loss.backward()
            optimizer.step()
"""
)

BUG_TRAIN_AE_NO_ZERO_GRAD = train_ae(
    """            output = model(images)
            loss = F.mse_loss(output, images)
            loss.backward()
            optimizer.step()
"""
)

BUG_TRAIN_AE_L1 = train_ae(
    """            # trying L1, the reconstructions looked blurry with MSE
            optimizer.zero_grad()
            loss = F.l1_loss(model(images), images)
            loss.backward()
            optimizer.step()
"""
)

# ---- 7.1.4 train_classifier --------------------------------------------------------------------------

CLS_CRITERION = "criterion = nn.CrossEntropyLoss()\n"


def train_classifier(setup: str, body: str) -> str:
    """The template's train_classifier with `setup` (4 spaces) and `body` (12 spaces) where the TODOs were."""
    return (
        "def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):\n"
        f"{setup}"
        "    loss_traj = []\n"
        '    for epoch in tqdm(range(epochs), desc="classifier"):\n'
        "        epoch_loss = 0.0\n"
        "        for images, labels in dataloader:\n"
        f"{body}"
        "            epoch_loss += loss.item()\n"
        "        loss_traj.append(epoch_loss / len(dataloader))\n"
        "    return cls, loss_traj\n"
    )


TRAIN_CLASSIFIER_NO_GRAD = train_classifier(
    """    if supervised:
        optimizer = torch.optim.Adam(list(encoder.parameters()) + list(cls.parameters()), lr=1e-3, weight_decay=1e-4)
    else:
        optimizer = torch.optim.Adam(cls.parameters(), lr=1e-3, weight_decay=1e-4)
""",
    """            if supervised:
                feats = encoder(images)
            else:
                with torch.no_grad():
                    feats = encoder(images)
            out = cls(feats.view(feats.size(0), -1))
            loss = criterion(out, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

TRAIN_CLASSIFIER_DETACH = train_classifier(
    """    params = list(cls.parameters())
    if supervised:
        params = params + list(encoder.parameters())
    optim = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
""",
    """            z = encoder(images)
            if not supervised:
                z = z.detach()
            logits = cls(z.reshape(z.shape[0], -1))
            loss = F.cross_entropy(logits, labels)
            optim.zero_grad()
            loss.backward()
            optim.step()
""",
)

TRAIN_CLASSIFIER_REQUIRES_GRAD = train_classifier(
    """    for p in encoder.parameters():
        p.requires_grad = supervised
    trainable = [p for p in list(encoder.parameters()) + list(cls.parameters()) if p.requires_grad]
    optimizer = optim.Adam(trainable, lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
""",
    """            optimizer.zero_grad()
            features = encoder(images)
            loss = loss_fn(cls(torch.flatten(features, 1)), labels)
            loss.backward()
            optimizer.step()
""",
)

FLATTEN_HELPER = """class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)

flatten = Flatten()
"""

TRAIN_CLASSIFIER_FLATTEN_HELPER = train_classifier(
    """    if supervised:
        encoder.train()
        optimizer = torch.optim.Adam([*encoder.parameters(), *cls.parameters()], lr=1e-3, weight_decay=1e-4)
    else:
        optimizer = torch.optim.Adam(cls.parameters(), lr=1e-3, weight_decay=1e-4)
""",
    """            images, labels = images.to(device), labels.to(device)
            with torch.set_grad_enabled(supervised):
                h = flatten(encoder(images))
            scores = cls(h)
            loss = criterion(scores, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

TRAIN_CLASSIFIER_PARAM_GROUPS = train_classifier(
    """    groups = [{"params": cls.parameters()}]
    if supervised:
        groups.append({"params": encoder.parameters()})
    optimizer = torch.optim.Adam(groups, lr=1e-3, weight_decay=1e-4)
""",
    """            if not supervised:
                with torch.no_grad():
                    enc_out = encoder(images)
            else:
                enc_out = encoder(images)
            pred = cls(enc_out.flatten(1))
            loss = nn.CrossEntropyLoss()(pred, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

BATCH_SIZE_CELL = "batch_size = 128\nfeat_dim = 24 * 4 * 4\n"

BUG_TRAIN_CLASSIFIER_VIEW_BATCH_SIZE = train_classifier(
    """    if supervised:
        optimizer = torch.optim.Adam(list(cls.parameters()) + list(encoder.parameters()), lr=1e-3, weight_decay=1e-4)
    else:
        optimizer = torch.optim.Adam(cls.parameters(), lr=1e-3, weight_decay=1e-4)
""",
    """            if supervised:
                feats = encoder(images)
            else:
                with torch.no_grad():
                    feats = encoder(images)
            out = cls(feats.view(batch_size, -1))
            loss = F.cross_entropy(out, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

BUG_TRAIN_CLASSIFIER_NOT_FROZEN = train_classifier(
    """    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(cls.parameters()), lr=1e-3, weight_decay=1e-4)
""",
    """            out = cls(encoder(images).view(images.shape[0], -1))
            loss = criterion(out, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

BUG_TRAIN_CLASSIFIER_SUPERVISED_ENCODER_IDLE = train_classifier(
    """    optimizer = torch.optim.Adam(cls.parameters(), lr=1e-3, weight_decay=1e-4)
""",
    """            if supervised:
                x = encoder(images)
            else:
                with torch.no_grad():
                    x = encoder(images)
            loss = F.cross_entropy(cls(x.flatten(1)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

# ---- 7.2.1 ProjectionHead -----------------------------------------------------------------------------

HEAD_F_NORMALIZE = """class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x):
        x = self.fc(x)
        return F.normalize(x, p=2, dim=1)
"""

HEAD_DIVIDE_BY_NORM = """class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super(ProjectionHead, self).__init__()
        self.linear = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x):
        out = self.linear(x)
        out = out / out.norm(dim=-1, keepdim=True)
        return out
"""

HEAD_LINALG_NORM = """class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super().__init__()
        self.proj = nn.Linear(in_features=embedding_dim, out_features=projection_dim)

    def forward(self, x):
        h = self.proj(x)
        return h / torch.linalg.norm(h, dim=1, keepdim=True)
"""

HEAD_SEQUENTIAL = """class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(embedding_dim, projection_dim))

    def forward(self, x):
        return nn.functional.normalize(self.head(x), dim=-1)
"""

BUG_HEAD_NOT_NORMALISED = """class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x):
        return self.fc(x)
"""

BUG_HEAD_WHOLE_MATRIX_NORM = """class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super(ProjectionHead, self).__init__()
        self.linear = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x):
        x = self.linear(x)
        return x / x.norm()
"""

# ---- 7.2.2 CLIPModel ----------------------------------------------------------------------------------

CLIP_CRITERION = "criterion = nn.CrossEntropyLoss()\n"


def clip_model(init: str, forward: str, header: str = "super().__init__()") -> str:
    return (
        "class CLIPModel(nn.Module):\n"
        "    def __init__(self, temperature=0.07, image_embedding=2048, text_embedding=768):\n"
        f"        {header}\n"
        f"{init}\n"
        "    def forward(self, batch):\n"
        f"{forward}"
    )


CLIP_INIT_KEYWORDS = """        self.image_encoder = ImageEncoder()
        self.text_encoder = TextEncoder()
        self.image_projection = ProjectionHead(embedding_dim=image_embedding)
        self.text_projection = ProjectionHead(embedding_dim=text_embedding)
        self.temperature = temperature
"""

CLIP_INIT_POSITIONAL = """        self.temperature = temperature
        self.image_encoder = ImageEncoder()
        self.text_encoder = TextEncoder()
        self.image_projection = ProjectionHead(image_embedding, 256)
        self.text_projection = ProjectionHead(text_embedding, 256)
"""

CLIP_CRITERION_DEVICE = clip_model(
    CLIP_INIT_KEYWORDS,
    """        image_features = self.image_encoder(batch["image"])
        text_features = self.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        image_embeddings = self.image_projection(image_features)
        text_embeddings = self.text_projection(text_features)
        logits = (image_embeddings @ text_embeddings.T) / self.temperature
        labels = torch.arange(len(logits)).to(device)
        loss_i = criterion(logits, labels)
        loss_t = criterion(logits.T, labels)
        return (loss_i + loss_t) / 2.0
""",
)

CLIP_TWO_LOGITS = clip_model(
    CLIP_INIT_POSITIONAL,
    """        img = self.image_projection(self.image_encoder(batch["image"]))
        with torch.no_grad():
            txt_feat = self.text_encoder(batch["input_ids"], batch["attention_mask"])
        txt = self.text_projection(txt_feat)
        logits_per_image = img @ txt.t() / self.temperature
        logits_per_text = txt @ img.t() / self.temperature
        target = torch.arange(img.shape[0], device=img.device)
        return 0.5 * (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_text, target))
""",
    header="super(CLIPModel, self).__init__()",
)

SYMMETRIC_LOSS_HELPER = """def symmetric_ce(logits):
    # logits[i, j] = similarity of image i and caption j; the matching caption is on the diagonal
    n = logits.size(0)
    targets = torch.arange(n, device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
"""

CLIP_WITH_HELPER = clip_model(
    CLIP_INIT_KEYWORDS,
    """        I = self.image_projection(self.image_encoder(batch["image"]))
        T = self.text_projection(self.text_encoder(batch["input_ids"], batch["attention_mask"]))
        return symmetric_ce(I @ T.T / self.temperature)
""",
)

CLIP_CONCATENATED = clip_model(
    CLIP_INIT_POSITIONAL,
    """        image_emb = self.image_projection(self.image_encoder(batch["image"]))
        text_emb = self.text_projection(
            self.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        )
        sim = torch.matmul(image_emb, text_emb.transpose(0, 1)) / self.temperature
        n = sim.shape[0]
        gt = torch.arange(n, device=sim.device)
        # rows are the image->text direction, columns text->image; both averaged in one call
        return F.cross_entropy(torch.cat([sim, sim.t()], dim=0), torch.cat([gt, gt]))
""",
)

CLIP_EINSUM = clip_model(
    CLIP_INIT_KEYWORDS,
    """        images, ids, mask = batch["image"], batch["input_ids"], batch["attention_mask"]
        i_e = self.image_projection(self.image_encoder(images))
        t_e = self.text_projection(self.text_encoder(ids, mask))
        logits = torch.einsum("nd,md->nm", i_e, t_e) / self.temperature
        y = torch.arange(logits.size(0)).to(logits.device)
        loss_img = nn.CrossEntropyLoss()(logits, y)
        loss_txt = nn.CrossEntropyLoss()(logits.T, y)
        loss = (loss_img + loss_txt) / 2
        return loss
""",
)

BUG_CLIP_ONE_DIRECTION = clip_model(
    CLIP_INIT_KEYWORDS,
    """        image_embeddings = self.image_projection(self.image_encoder(batch["image"]))
        text_embeddings = self.text_projection(self.text_encoder(batch["input_ids"], batch["attention_mask"]))
        logits = image_embeddings @ text_embeddings.T / self.temperature
        labels = torch.arange(logits.shape[0], device=logits.device)
        return F.cross_entropy(logits, labels)
""",
)

BUG_CLIP_TIMES_TEMPERATURE = clip_model(
    CLIP_INIT_POSITIONAL,
    """        img = self.image_projection(self.image_encoder(batch["image"]))
        txt = self.text_projection(self.text_encoder(batch["input_ids"], batch["attention_mask"]))
        logits = img @ txt.T * self.temperature
        labels = torch.arange(len(img), device=img.device)
        return (criterion(logits, labels) + criterion(logits.T, labels)) / 2
""",
)

BUG_CLIP_DETACHED_IMAGES = clip_model(
    CLIP_INIT_KEYWORDS,
    """        image_features = self.image_encoder(batch["image"]).detach()
        text_features = self.text_encoder(batch["input_ids"], batch["attention_mask"]).detach()
        I = self.image_projection(image_features)
        T = self.text_projection(text_features)
        logits = I @ T.T / self.temperature
        targets = torch.arange(I.shape[0], device=I.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
""",
)

# ---- 7.2.4 retrieve_images ----------------------------------------------------------------------------

TOKENIZER_CELL = "tokenizer = AutoTokenizer.from_pretrained(SETUP.text_model)\n"

RETRIEVE_TOPK_DICT_TO_DEVICE = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    encoded = tokenizer([query], padding=True, truncation=True, max_length=64, return_tensors="pt")
    encoded = {key: v.to(device) for key, v in encoded.items()}
    text_features = model.text_encoder(encoded["input_ids"], encoded["attention_mask"])
    query_embedding = model.text_projection(text_features)
    similarity = image_embeddings @ query_embedding.squeeze(0)
    values, top = torch.topk(similarity, k)
    return [image_filenames[i] for i in top]
"""

RETRIEVE_DICT_TORCH_TENSOR = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    encoded = TOKENIZER([query], padding=True, truncation=True, max_length=64)
    encoded = {key: torch.tensor(v) for key, v in encoded.items()}
    q = model.text_projection(
        model.text_encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    )
    dot = (image_embeddings @ q.T).squeeze(1)
    idx = torch.argsort(dot, descending=True)[:k]
    return [image_filenames[j] for j in idx.tolist()]
"""

RETRIEVE_SORT_NUMPY_ARRAY = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    model.eval()
    tokens = TOKENIZER(query, return_tensors="pt")
    txt = model.text_projection(model.text_encoder(tokens["input_ids"], tokens["attention_mask"]))
    scores = torch.mm(image_embeddings, txt.t()).flatten()
    _, order = torch.sort(scores, descending=True)
    return np.array(image_filenames)[order[:k].cpu().numpy()]
"""

RETRIEVE_NUMPY_ARGSORT = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    t = TOKENIZER([query], padding=True, truncation=True, max_length=64, return_tensors="pt")
    text_emb = model.text_projection(
        model.text_encoder(input_ids=t["input_ids"].to(image_embeddings.device),
                           attention_mask=t["attention_mask"].to(image_embeddings.device))
    )
    scores = (image_embeddings @ text_emb.T).squeeze(-1).cpu().numpy()
    best = np.argsort(-scores)[:k]
    return [image_filenames[b] for b in best]
"""

RETRIEVE_TOPK_INDICES = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    inputs = TOKENIZER([query], padding=True, truncation=True, max_length=64, return_tensors="pt").to(device)
    query_emb = model.text_projection(model.text_encoder(inputs["input_ids"], inputs["attention_mask"]))
    sims = (query_emb @ image_embeddings.T)[0]
    top_k = sims.topk(k=k).indices
    matches = [image_filenames[int(i)] for i in top_k]
    return matches
"""

BUG_RETRIEVE_ASCENDING = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    tokens = TOKENIZER([query], padding=True, truncation=True, max_length=64, return_tensors="pt")
    q = model.text_projection(model.text_encoder(tokens["input_ids"], tokens["attention_mask"]))
    scores = (image_embeddings @ q.T).squeeze(1)
    idx = torch.argsort(scores)[:k]
    return [image_filenames[i] for i in idx]
"""

BUG_RETRIEVE_WORST_FIRST = """@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    tokens = tokenizer([query], padding=True, truncation=True, max_length=64, return_tensors="pt")
    tokens = {name: tensor.to(device) for name, tensor in tokens.items()}
    q = model.text_projection(model.text_encoder(tokens["input_ids"], tokens["attention_mask"]))
    scores = (image_embeddings @ q.T).squeeze(1).cpu().numpy()
    best = np.argsort(scores)[-k:]
    return [image_filenames[b] for b in best]
"""


# ---- a Windows student's notebook: tabs, CRLF line ends, postponed annotations, helpers defined later ----
FUTURE_ANNOTATIONS = "from __future__ import annotations\r\n\r\nfrom torch import Tensor\r\n"


def crlf(source: str) -> str:
    """The source as a Windows editor saves it: every line ending in CR LF."""
    return source.replace("\n", "\r\n")


ENCODER_TABS_ANNOTATED = crlf(
    """class Encoder(nn.Module):
\tdef __init__(self, in_channels: int = 3) -> None:
\t\tsuper(Encoder, self).__init__()
\t\tself.conv1 = nn.Conv2d(in_channels, 12, 4, 2, 1)
\t\tself.conv2 = nn.Conv2d(12, 24, 4, 2, 1)
\t\tself.conv3 = nn.Conv2d(24, 48, 4, 2, 1)
\t\tself.conv4 = nn.Conv2d(48, 24, 4, 2, 1)

\tdef forward(self, x: Tensor) -> Tensor:
\t\tfor conv in (self.conv1, self.conv2, self.conv3, self.conv4):
\t\t\tx = F.relu(conv(x))
\t\treturn x
"""
)

DECODER_LATER_HELPER = crlf(
    """class Decoder(nn.Module):
\tdef __init__(self, out_channels: int = 3, feat_dim: int = 64) -> None:
\t\tsuper(Decoder, self).__init__()
\t\tself.up1 = up(24, 48)
\t\tself.up2 = up(48, 24)
\t\tself.up3 = up(24, 12)
\t\tself.up4 = up(12, out_channels)

\tdef forward(self, x: Tensor) -> Tensor:
\t\tx = F.relu(self.up1(x))
\t\tx = F.relu(self.up2(x))
\t\tx = F.relu(self.up3(x))
\t\treturn torch.sigmoid(self.up4(x))
"""
)

UP_HELPER = crlf(
    """def up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
\t\"\"\"doubles H and W\"\"\"
\treturn nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)
"""
)

HEAD_LATER_HELPER = crlf(
    """class ProjectionHead(nn.Module):
\tdef __init__(self, embedding_dim: int, projection_dim: int = 256) -> None:
\t\tsuper(ProjectionHead, self).__init__()
\t\tself.linear = nn.Linear(embedding_dim, projection_dim)

\tdef forward(self, x: Tensor) -> Tensor:
\t\treturn unit_rows(self.linear(x))
"""
)

UNIT_ROWS_HELPER = crlf(
    """def unit_rows(x: Tensor) -> Tensor:
\treturn x / x.norm(dim=-1, keepdim=True)
"""
)


# ---- written on Colab's GPU runtime: the device hard-coded ----------------------------------------------
CUDA_CELL = (
    'device = torch.device("cuda")  # Runtime > Change runtime type > T4 GPU\n'
    "print(torch.cuda.get_device_name(0))\n"
)

TRAIN_AE_CUDA = train_ae(
    """            images = images.cuda()
            optimizer.zero_grad()
            loss = F.mse_loss(model(images), images)
            loss.backward()
            optimizer.step()
""",
    setup="    model = model.cuda()\n",
)

TRAIN_CLASSIFIER_CUDA = train_classifier(
    """    encoder.to("cuda:0")
    cls.to("cuda:0")
    params = list(cls.parameters()) + (list(encoder.parameters()) if supervised else [])
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
""",
    """            images, labels = images.to("cuda:0"), labels.to("cuda:0")
            with torch.set_grad_enabled(supervised):
                feats = encoder(images)
            loss = F.cross_entropy(cls(feats.flatten(1)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""",
)

CLIP_CUDA_LABELS = clip_model(
    CLIP_INIT_KEYWORDS,
    """        image_embeddings = self.image_projection(self.image_encoder(batch["image"]))
        text_features = self.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        text_embeddings = self.text_projection(text_features)
        logits = image_embeddings @ text_embeddings.T / self.temperature
        targets = torch.arange(logits.shape[0], device="cuda")
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
""",
)

