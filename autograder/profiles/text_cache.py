"""The frozen text encoder's outputs, computed once at `prepare` time.

DistilBERT is frozen, so its output for a caption never changes: running it in every grading run (and
every CLIP epoch) would be wasted work. The cache is keyed by a caption's token ids without padding, so
it answers for any batch layout, and falls back to the model (returns None) for anything unknown.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def cls_features(last_hidden_state: torch.Tensor) -> torch.Tensor:
    """The [CLS] rows as a tensor of their own: the slice alone is a view that keeps the whole hidden state of
    its batch alive, which for the real Flickr8k captions made `prepare` peak at 5.6 GB."""
    return last_hidden_state[:, 0, :].float().clone()


class TextFeatureCache:
    def __init__(self, ids: torch.Tensor, lengths: torch.Tensor, features: torch.Tensor):
        self.features = features
        offsets = torch.cumsum(lengths, 0) - lengths
        self._rows = {
            tuple(ids[start : start + length].tolist()): row
            for row, (start, length) in enumerate(zip(offsets.tolist(), lengths.tolist(), strict=True))
        }
        self._ids, self._lengths = ids, lengths

    def __len__(self) -> int:
        return len(self._rows)

    @classmethod
    @torch.no_grad()
    def build(cls, tokenizer, model, captions: list[str], max_length: int = 64, batch_size: int = 64):
        """CLS outputs of every distinct caption, batched by token length so that no padding is involved."""
        encoded = tokenizer(sorted(set(captions)), truncation=True, max_length=max_length)["input_ids"]
        by_length: dict[int, list[list[int]]] = defaultdict(list)
        for ids in encoded:
            by_length[len(ids)].append(ids)
        all_ids, lengths, features = [], [], []
        model.eval()
        for length, group in sorted(by_length.items()):
            for start in range(0, len(group), batch_size):
                batch = torch.tensor(group[start : start + batch_size])
                output = model(input_ids=batch, attention_mask=torch.ones_like(batch))
                features.append(cls_features(output.last_hidden_state))
                all_ids.append(batch.flatten())
                lengths.extend([length] * len(batch))
        return cls(torch.cat(all_ids), torch.tensor(lengths), torch.cat(features))

    def save(self, path: Path) -> None:
        save_file({"ids": self._ids, "lengths": self._lengths, "features": self.features.contiguous()}, str(path))

    @classmethod
    def load(cls, path: Path) -> TextFeatureCache:
        tensors = load_file(str(path))
        return cls(tensors["ids"], tensors["lengths"], tensors["features"])

    def lookup(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Features for a (padded) batch when every caption in it is known, else None."""
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            row = self._rows.get(tuple(token for token, keep in zip(ids, mask, strict=True) if keep))
            if row is None:
                return None
            rows.append(row)
        return self.features[rows].to(input_ids.device)
