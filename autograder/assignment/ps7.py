# The one source of Problem Set 7: `python -m autograder template` builds the reference notebook and
# the student template from it. Markers are explained in autograder/assignment/source.py.
# Over 400 lines on purpose: it is the whole problem set (statement, provided code, solutions) in one file.

# %% [markdown]
# # Problem Set 7: Representation Learning
#
# In this problem set you learn image representations in two ways and measure how useful they are.
#
# **Part 7.1 — Autoencoders (5 points).** You train a small convolutional autoencoder on unlabeled
# STL-10 images and then ask how much its encoder learned about object classes: a linear classifier
# (a *linear probe*) is trained on top of the frozen encoder and evaluated on the labelled test set.
# You compare three encoders: the autoencoder's (Method I), one trained jointly with the classifier on
# the labels (Method II), and a randomly initialised one (Method III).
#
# **Part 7.2 — CLIP (5 points).** You build a simplified CLIP: a trainable ResNet50 image encoder and a
# frozen DistilBERT text encoder, each followed by a projection head, trained with the symmetric
# InfoNCE loss on Flickr8k image–caption pairs. You then probe the image encoder on STL-10 and use the
# model to retrieve images from a text query.
#
# Write your code only where you see `# TODO` and `raise NotImplementedError`. Do not rename the
# functions, classes or attributes named in the instructions: the autograder calls them by name, and
# grades each part on its own, so a mistake in one part does not cost points in another.
#
# Use a GPU runtime (Runtime → Change runtime type → GPU).

# %% tags=["provided"]
import math
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# %% tags=["provided"]
# Reading STL-10's binary files (downloaded below): uint8 images, channel-major, columns first.
# INCLUDE autograder/data/stl10.py

# %% tags=["provided"]
# Reading Flickr8k (Images/ and captions.txt): one caption per image and an 80/20 split.
# INCLUDE autograder/data/flickr8k.py

# %% tags=["provided"]
# Where the data, the pretrained backbones and the training budgets come from. On Colab (PS7_PROFILE
# unset) everything is downloaded; the autograder sets PS7_PROFILE to use its offline, prepared copies.
FLICKR8K_URL = os.environ.get("FLICKR8K_URL", "")  # the course staff give you this address
UNLABELED_IMAGES = 10_000  # the first 10,000 of STL-10's 100,000 unlabeled images keep training short


def download_flickr8k(root):
    """Fetch and unpack Flickr8k (Images/ and captions.txt) into root/flickr8k once."""
    import urllib.request
    import zipfile

    folder = os.path.join(root, "flickr8k")
    if not os.path.isfile(os.path.join(folder, "captions.txt")):
        if not FLICKR8K_URL:
            raise RuntimeError("Set FLICKR8K_URL to the Flickr8k zip address given on the course page.")
        os.makedirs(folder, exist_ok=True)
        archive, _ = urllib.request.urlretrieve(FLICKR8K_URL, os.path.join(root, "flickr8k.zip"))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(folder)
    return folder


def colab_setup(root="./data"):
    """The real assignment: STL-10, Flickr8k, ResNet50 (ImageNet weights) and DistilBERT."""
    torchvision.datasets.STL10(root, split="test", download=True)  # fetches and unpacks stl10_binary/
    return SimpleNamespace(
        name="colab",
        seed=0,
        stl10_root=root,
        flickr8k_root=download_flickr8k(root),
        unlabeled_subset=UNLABELED_IMAGES,
        ae_epochs=100,
        probe_epochs=100,
        clip_epochs=3,
        image_backbone=lambda: torchvision.models.resnet50(
            weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V2
        ),
        text_model="distilbert-base-uncased",
        image_embedding=2048,
        text_embedding=768,
        cached_text_features=lambda input_ids, attention_mask: None,
        example_queries=["a dog running on the grass", "children playing in the water"],
    )


PS7_PROFILE = os.environ.get("PS7_PROFILE")
if PS7_PROFILE:
    from autograder.profiles.seam import notebook_setup

    SETUP = notebook_setup(PS7_PROFILE)
else:
    SETUP = colab_setup()
torch.manual_seed(SETUP.seed)

# %% tags=["provided"]
def center_crop(images, size=64):
    """Crop the centre of a batch of images (N, C, H, W); cropping the whole tensor at once is fast."""
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


class TensorBatches:
    """Minibatches (float images in [0, 1], labels) from uint8 images kept in memory.

    Converting a whole batch at once is much faster than a per-image Dataset. Images without labels
    (the unlabeled split) get the label -1, as torchvision's STL10 does.
    """

    def __init__(self, images, labels=None, batch_size=128, shuffle=False, seed=0):
        self.images = images
        self.labels = labels if labels is not None else torch.full((len(images),), -1, dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        count = len(self.images)
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        for start in range(0, count, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.images[index].to(DEVICE).float().div_(255), self.labels[index].to(DEVICE)


def show_images(images, titles=None, columns=8):
    """Plot a few images (N, 3, H, W) in [0, 1]; does nothing where matplotlib is unavailable."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    images = images.detach().cpu().clamp(0, 1)
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index].permute(1, 2, 0).numpy())
            if titles is not None:
                axis.set_title(str(titles[index]), fontsize=8)
    plt.show()
    plt.close(figure)


# %% [markdown]
# ## 7.1 Autoencoders
#
# We use STL-10: 96×96 colour images of ten object classes, with 5,000 labelled training images,
# 8,000 labelled test images and 100,000 unlabeled images (which also contain objects of other kinds).
# To keep training time short, we use the first 10,000 unlabeled images. All images are cropped to their
# central 64×64 pixels.

# %%
unlabeled_indices = None if SETUP.unlabeled_subset is None else range(SETUP.unlabeled_subset)
unlabeled_images, _ = read_split(SETUP.stl10_root, "unlabeled", indices=unlabeled_indices)
train_images, train_labels = read_split(SETUP.stl10_root, "train")
test_images, test_labels = read_split(SETUP.stl10_root, "test")
unlabeled_images, train_images, test_images = (
    center_crop(images).contiguous() for images in (unlabeled_images, train_images, test_images)
)
print("unlabeled", tuple(unlabeled_images.shape), "train", tuple(train_images.shape), "test", tuple(test_images.shape))

unlabeled_loader = TensorBatches(unlabeled_images, batch_size=128, shuffle=True, seed=SETUP.seed)
train_loader = TensorBatches(train_images, train_labels, batch_size=128, shuffle=True, seed=SETUP.seed)
test_loader = TensorBatches(test_images, test_labels, batch_size=256)
show_images(train_images[:8].float() / 255, [CLASS_NAMES[label] for label in train_labels[:8]])

# %% [markdown]
# ### 7.1.1 Encoder (1 point)
#
# Implement `Encoder(in_channels=3)`: four `nn.Conv2d` layers with 3 → 12 → 24 → 48 → 24 channels,
# each with kernel size 4, stride 2 and padding 1, and a ReLU after every convolution. A 64×64 image
# becomes a feature map of shape (N, 24, 4, 4). The encoder has 42,156 parameters.

# %% tags=["graded"]
class Encoder(nn.Module):
    def __init__(self, in_channels=3):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(in_channels, 12, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(12, 24, kernel_size=4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(24, 48, kernel_size=4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(48, 24, kernel_size=4, stride=2, padding=1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.relu(self.conv4(x))
        ### END SOLUTION


# %% [markdown]
# ### 7.1.2 Decoder (1 point)
#
# Implement `Decoder(out_channels=3, feat_dim=64)`, the mirror image of the encoder: four
# `nn.ConvTranspose2d` layers with 24 → 48 → 24 → 12 → 3 channels (kernel 4, stride 2, padding 1), a
# ReLU between layers and a Sigmoid at the end, so that pixels lie in [0, 1]. It maps (N, 24, 4, 4)
# to (N, 3, 64, 64) and has 42,135 parameters.

# %% tags=["graded"]
class Decoder(nn.Module):
    def __init__(self, out_channels=3, feat_dim=64):
        super().__init__()
        ### BEGIN SOLUTION
        self.deconv1 = nn.ConvTranspose2d(24, 48, kernel_size=4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(48, 24, kernel_size=4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(24, 12, kernel_size=4, stride=2, padding=1)
        self.deconv4 = nn.ConvTranspose2d(12, out_channels, kernel_size=4, stride=2, padding=1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = F.relu(self.deconv1(x))
        x = F.relu(self.deconv2(x))
        x = F.relu(self.deconv3(x))
        return torch.sigmoid(self.deconv4(x))
        ### END SOLUTION


# %% tags=["provided"]
class Autoencoder(nn.Module):
    def __init__(self, in_channels=3, feat_dim=64):
        super().__init__()
        self.encoder = Encoder(in_channels)
        self.decoder = Decoder(in_channels, feat_dim)

    def forward(self, x):
        return self.decoder(self.encoder(x))


# %% [markdown]
# ### 7.1.3 Training the autoencoder (1 point)
#
# Complete `train_ae(model, dataloader, epochs)`. For each minibatch, reconstruct the images and take
# one optimisation step on the mean squared error between the reconstruction and the input, with the
# Adam optimiser created for you (learning rate 1e-3). Return the model and the list of mean losses
# per epoch.

# %% tags=["graded"]
def train_ae(model, dataloader, epochs=100):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="autoencoder"):
        epoch_loss = 0.0
        for images, _ in dataloader:
            ### BEGIN SOLUTION
            optimizer.zero_grad()
            reconstruction = model(images)
            loss = F.mse_loss(reconstruction, images)
            loss.backward()
            optimizer.step()
            ### END SOLUTION
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return model, loss_traj


# %%
ae = Autoencoder().to(DEVICE)
ae, ae_loss_traj = train_ae(ae, unlabeled_loader, epochs=SETUP.ae_epochs)
print("final reconstruction loss", ae_loss_traj[-1])
with torch.no_grad():
    originals = test_images[:8].to(DEVICE).float() / 255
    show_images(torch.cat([originals, ae(originals)]))

# %% [markdown]
# ### 7.1.4 Linear probes (1 point)
#
# Complete `train_classifier(encoder, cls, dataloader, epochs, supervised)`. The classifier `cls` is a
# linear layer on the flattened encoder features. With `supervised=False` the encoder stays frozen and
# only the classifier is trained; with `supervised=True` encoder and classifier are trained together.
# Use Adam with learning rate 1e-3 and weight decay 1e-4, and the cross-entropy loss. Then set the
# `supervised` argument of each of the three method cells below.

# %% tags=["graded"]
def train_classifier(encoder, cls, dataloader, epochs=100, supervised=False):
    ### BEGIN SOLUTION
    parameters = list(cls.parameters())
    if supervised:
        parameters += list(encoder.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-3, weight_decay=1e-4)
    ### END SOLUTION
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="classifier"):
        epoch_loss = 0.0
        for images, labels in dataloader:
            ### BEGIN SOLUTION
            with torch.set_grad_enabled(supervised):
                features = encoder(images)
            logits = cls(features.flatten(start_dim=1))
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ### END SOLUTION
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(dataloader))
    return cls, loss_traj


# %% tags=["provided"]
@torch.no_grad()
def test(encoder, cls, dataloader):
    """Accuracy of the linear classifier `cls` on the encoder's features."""
    was_training = encoder.training, cls.training
    encoder.eval()
    cls.eval()
    correct = total = 0
    for images, labels in dataloader:
        logits = cls(encoder(images).flatten(start_dim=1))
        correct += (logits.argmax(dim=1) == labels).sum().item()
        total += len(labels)
    encoder.train(was_training[0])
    cls.train(was_training[1])
    return correct / total


# %%
# Method I: the autoencoder's encoder, frozen.
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method1_loss_traj = train_classifier(
    ae.encoder,
    cls,
    train_loader,
    epochs=SETUP.probe_epochs,
    ### BEGIN SOLUTION
    supervised=False,
    ### TEMPLATE
    supervised=...,  # TODO: True or False?
    ### END SOLUTION
)
method1_accuracy = test(ae.encoder, cls, test_loader)
print(f"Method I accuracy: {method1_accuracy:.3f}")

# %%
# Method II: a new encoder trained together with the classifier.
encoder = Encoder().to(DEVICE)
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method2_loss_traj = train_classifier(
    encoder,
    cls,
    train_loader,
    epochs=SETUP.probe_epochs,
    ### BEGIN SOLUTION
    supervised=True,
    ### TEMPLATE
    supervised=...,  # TODO: True or False?
    ### END SOLUTION
)
method2_accuracy = test(encoder, cls, test_loader)
print(f"Method II accuracy: {method2_accuracy:.3f}")

# %%
# Method III: a randomly initialised encoder, frozen.
random_encoder = Encoder().to(DEVICE)
cls = nn.Linear(24 * 4 * 4, 10).to(DEVICE)
cls, method3_loss_traj = train_classifier(
    random_encoder,
    cls,
    train_loader,
    epochs=SETUP.probe_epochs,
    ### BEGIN SOLUTION
    supervised=False,
    ### TEMPLATE
    supervised=...,  # TODO: True or False?
    ### END SOLUTION
)
method3_accuracy = test(random_encoder, cls, test_loader)
print(f"Method III accuracy: {method3_accuracy:.3f}")

# %% [markdown]
# ### 7.1.5 Report (1 point)
#
# Write the test accuracy of each method on its own line, in the form `method 1 accuracy: 0.30` (a
# fraction or a percentage; `Method I: 30%` or a table with one row per method are read too). Which
# method works best, which worst, and why?
#
# ### BEGIN SOLUTION
# method 1 accuracy: 0.320
# method 2 accuracy: 0.435
# method 3 accuracy: 0.258
#
# Training the encoder on the labels (Method II) works best; the autoencoder's features (Method I)
# carry some class information that a random encoder (Method III) lacks.
# ### TEMPLATE
# method 1 accuracy:
# method 2 accuracy:
# method 3 accuracy:
# ### END SOLUTION

# %% [markdown]
# ## 7.2 CLIP
#
# CLIP learns a shared embedding space for images and text: the embeddings of an image and of its
# caption should be close, and those of unrelated pairs far apart. Our simplified CLIP uses a
# ResNet50 pretrained on ImageNet as the image encoder (trained further) and DistilBERT as the text
# encoder (frozen), each followed by a projection head into a 256-dimensional space. It is trained on
# Flickr8k, one caption per image, with images resized to 64×64.

# %% tags=["provided"]
CLIP_CONFIG = {
    "batch_size": 32,
    "head_lr": 1e-3,
    "image_encoder_lr": 1e-4,
    "weight_decay": 1e-3,
    "temperature": 0.07,
    "projection_dim": 256,
    "image_size": 64,
}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TOKENIZER = AutoTokenizer.from_pretrained(SETUP.text_model)


class ImageNetNormalize(nn.Module):
    """Map images in [0, 1] to the statistics the pretrained ResNet expects."""

    def forward(self, x):
        return (x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)


class ImageEncoder(nn.Module):
    """ResNet50 with ImageNet weights and its classifier removed: 2048 features per image, trainable."""

    def __init__(self):
        super().__init__()
        self.model = SETUP.image_backbone()
        self.model.fc = nn.Identity()
        for parameter in self.model.parameters():
            parameter.requires_grad = True

    def forward(self, x):
        return self.model(x)


class TextEncoder(nn.Module):
    """DistilBERT, frozen; a caption is represented by the output at its first ([CLS]) token."""

    def __init__(self):
        super().__init__()
        self.model = AutoModel.from_pretrained(SETUP.text_model)
        for parameter in self.model.parameters():
            parameter.requires_grad = False
        self.target_token_idx = 0

    def forward(self, input_ids, attention_mask):
        cached = SETUP.cached_text_features(input_ids, attention_mask)
        if cached is not None:
            return cached
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return output.last_hidden_state[:, self.target_token_idx, :]


class ClipBatches:
    """Minibatches {"image", "input_ids", "attention_mask"} from uint8 images and tokenised captions."""

    def __init__(self, images, captions, batch_size=32, shuffle=False, seed=0):
        self.images = images
        self.tokens = TOKENIZER(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        count = len(self.images)
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        for start in range(0, count, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index].to(DEVICE).float().div_(255)
            yield {
                "image": ImageNetNormalize()(images),
                "input_ids": self.tokens["input_ids"][index].to(DEVICE),
                "attention_mask": self.tokens["attention_mask"][index].to(DEVICE),
            }


# %% [markdown]
# ### 7.2.1 Projection head (1 point)
#
# Implement `ProjectionHead(embedding_dim, projection_dim=256)`: a single linear layer from
# `embedding_dim` to `projection_dim`, whose outputs are L2-normalised (each row has norm 1).

# %% tags=["graded"]
class ProjectionHead(nn.Module):
    def __init__(self, embedding_dim, projection_dim=256):
        super().__init__()
        ### BEGIN SOLUTION
        self.projection = nn.Linear(embedding_dim, projection_dim)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return F.normalize(self.projection(x), dim=-1)
        ### END SOLUTION


# %% [markdown]
# ### 7.2.2 The CLIP model (2 points)
#
# Implement `CLIPModel(temperature, image_embedding=2048, text_embedding=768)`. In `__init__`, create
# `self.image_encoder = ImageEncoder()`, `self.text_encoder = TextEncoder()`,
# `self.image_projection` and `self.text_projection` (projection heads from each encoder's embedding
# size) and keep the temperature in `self.temperature`.
#
# `forward(batch)` receives a dictionary with `"image"`, `"input_ids"` and `"attention_mask"` and
# returns the symmetric InfoNCE loss: with I and T the projected image and text embeddings of the N
# pairs in the batch, the logits are `I @ T.T / temperature`, the i-th image belongs with the i-th
# caption, and the loss is the mean of the cross-entropy over images (rows) and over captions
# (columns). Do not use Python loops over the pairs of the batch: compute the logits of all pairs at
# once.

# %% tags=["graded"]
class CLIPModel(nn.Module):
    def __init__(self, temperature=0.07, image_embedding=2048, text_embedding=768):
        super().__init__()
        ### BEGIN SOLUTION
        self.image_encoder = ImageEncoder()
        self.text_encoder = TextEncoder()
        self.image_projection = ProjectionHead(embedding_dim=image_embedding)
        self.text_projection = ProjectionHead(embedding_dim=text_embedding)
        self.temperature = temperature
        ### END SOLUTION

    def forward(self, batch):
        ### BEGIN SOLUTION
        image_features = self.image_encoder(batch["image"])
        text_features = self.text_encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        image_embeddings = self.image_projection(image_features)
        text_embeddings = self.text_projection(text_features)
        logits = image_embeddings @ text_embeddings.T / self.temperature
        targets = torch.arange(logits.shape[0], device=logits.device)
        images_loss = F.cross_entropy(logits, targets)
        texts_loss = F.cross_entropy(logits.T, targets)
        return (images_loss + texts_loss) / 2
        ### END SOLUTION


# %% tags=["provided"]
def train_clip(model, batches, epochs):
    """AdamW with a learning rate per group: the heads learn faster than the pretrained image encoder."""
    heads = list(model.image_projection.parameters()) + list(model.text_projection.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": model.image_encoder.parameters(), "lr": CLIP_CONFIG["image_encoder_lr"]},
            {"params": heads, "lr": CLIP_CONFIG["head_lr"], "weight_decay": CLIP_CONFIG["weight_decay"]},
        ],
        weight_decay=0.0,
    )
    loss_traj = []
    for epoch in tqdm(range(epochs), desc="CLIP"):
        epoch_loss = 0.0
        for batch in batches:
            loss = model(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        loss_traj.append(epoch_loss / len(batches))
    return model, loss_traj


@torch.no_grad()
def embed_images(model, images, batch_size=128):
    """Projected, normalised embeddings of uint8 images (N, 3, H, W)."""
    model.eval()
    embeddings = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(DEVICE).float().div_(255)
        embeddings.append(model.image_projection(model.image_encoder(ImageNetNormalize()(batch))))
    model.train()
    return torch.cat(embeddings)


# %%
caption_rows = read_captions(SETUP.flickr8k_root)
train_pairs, val_pairs = train_val_split(one_caption_per_image(caption_rows), val_fraction=0.2, seed=42)
train_filenames, train_captions = zip(*train_pairs)
val_filenames, val_captions = zip(*val_pairs)
clip_train_images = load_images(SETUP.flickr8k_root, train_filenames, size=CLIP_CONFIG["image_size"])
clip_val_images = load_images(SETUP.flickr8k_root, val_filenames, size=CLIP_CONFIG["image_size"])
clip_batches = ClipBatches(
    clip_train_images, list(train_captions), batch_size=CLIP_CONFIG["batch_size"], shuffle=True, seed=SETUP.seed
)
print(len(train_pairs), "training pairs,", len(val_pairs), "validation pairs")

# %%
clip_model = CLIPModel(
    temperature=CLIP_CONFIG["temperature"],
    image_embedding=SETUP.image_embedding,
    text_embedding=SETUP.text_embedding,
).to(DEVICE)
clip_model, clip_loss_traj = train_clip(clip_model, clip_batches, epochs=SETUP.clip_epochs)
print("CLIP loss per epoch", [round(loss, 3) for loss in clip_loss_traj])

# %%
# Linear probe of the CLIP image encoder on STL-10, with the train_classifier you wrote in 7.1.4.
probe_encoder = nn.Sequential(ImageNetNormalize(), clip_model.image_encoder).eval()
clip_cls = nn.Linear(SETUP.image_embedding, 10).to(DEVICE)
clip_cls, clip_probe_loss_traj = train_classifier(
    probe_encoder, clip_cls, train_loader, epochs=SETUP.probe_epochs, supervised=False
)
clip_accuracy = test(probe_encoder, clip_cls, test_loader)
print(f"CLIP linear probe accuracy: {clip_accuracy:.3f}")

# %% [markdown]
# ### 7.2.3 Report (1 point)
#
# Write the linear-probe test accuracy of the CLIP image encoder in the form `CLIP accuracy: 0.80`.
# How does it compare with the autoencoder's features, and why?
#
# ### BEGIN SOLUTION
# CLIP accuracy: 0.802
#
# Much better than any method of 7.1: the ImageNet-pretrained ResNet50, tuned by contrastive learning
# on captions, has learned features that separate object classes.
# ### TEMPLATE
# CLIP accuracy:
# ### END SOLUTION

# %% [markdown]
# ### 7.2.4 Text-to-image retrieval (1 point)
#
# Implement `retrieve_images(model, image_embeddings, query, image_filenames, k=9)`: embed the text
# query with the model's text encoder and text projection, score every image by the dot product of
# its embedding with the query's, and return the `k` best filenames, best first, as a sequence of
# strings (a list, tuple, NumPy array or pandas Series). Do not use Python loops over the images:
# score and rank them all with tensor operations. A loop or comprehension over a fixed number of
# things (the tokenizer's outputs, the `k` results) is fine.

# %% tags=["graded"]
@torch.no_grad()
def retrieve_images(model, image_embeddings, query, image_filenames, k=9):
    ### BEGIN SOLUTION
    tokens = TOKENIZER([query], padding=True, truncation=True, max_length=64, return_tensors="pt")
    text_features = model.text_encoder(
        input_ids=tokens["input_ids"].to(image_embeddings.device),
        attention_mask=tokens["attention_mask"].to(image_embeddings.device),
    )
    query_embedding = model.text_projection(text_features)
    scores = (image_embeddings @ query_embedding.T).squeeze(1)
    best = torch.topk(scores, k).indices.cpu().numpy()
    return np.asarray(image_filenames, dtype=object)[best].tolist()
    ### END SOLUTION


# %%
val_embeddings = embed_images(clip_model, clip_val_images)
for query in SETUP.example_queries:
    matches = retrieve_images(clip_model, val_embeddings, query, list(val_filenames), k=9)
    print(query, "->", matches[:3])
    positions = [val_filenames.index(name) for name in matches]
    show_images(clip_val_images[positions].float() / 255, matches, columns=9)

# %% [markdown]
# ## Check your work
#
# The next cell runs the public checks of this problem set on this notebook as it is now (in Colab, unsaved edits
# included): every check with its points and, under each failed one, what was expected, what your code did and the
# likely bug. The first run in a runtime installs the checks (a minute or two); later runs take seconds. The
# results are **advisory**: the public checks cover 5.1 of the 10 points, and the hidden tests are graded after the
# deadline.

# %%
PS7_CHECKS_URL = "https://COURSE-SITE/ps7_checks-0.1.0-py3-none-any.whl"  # the course's link to the checks


def run_the_public_checks(url):
    """Install the course's checks (once per runtime) and run them on this notebook. Its imports stay inside, so
    that the names a student's own cells use (`sys`, `subprocess`) keep meaning what those cells say."""
    if "PS7_PROFILE" in os.environ:
        print("PS7_PROFILE is set: the course's own tools are running this notebook, and they check it themselves")
        return
    if "COURSE-SITE" in url:
        print("The link to the checks has not been filled in: install them from the course page, then run")
        print("    from autograder.notebook import check_this_notebook; check_this_notebook()")
        return
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", url], check=True)
    from autograder.notebook import check_this_notebook

    check_this_notebook()


run_the_public_checks(PS7_CHECKS_URL)
