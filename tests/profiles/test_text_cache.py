"""The cached text features equal what the frozen text encoder computes on a padded batch."""

import torch

from autograder.profiles.backbones import build_synthetic_text_model, load_text_model
from autograder.profiles.text_cache import TextFeatureCache, cls_features

CAPTIONS = ["a red ring on a blue background", "two small green squares", "a striped triangle", "a dot"]


def test_cache_matches_the_model_and_falls_back_for_unknown_captions(tmp_path):
    build_synthetic_text_model(tmp_path / "text", CAPTIONS * 3, seed=0, dim=32)
    tokenizer, model = load_text_model(tmp_path / "text")
    TextFeatureCache.build(tokenizer, model, CAPTIONS).save(tmp_path / "cache.safetensors")
    cache = TextFeatureCache.load(tmp_path / "cache.safetensors")
    assert len(cache) == len(CAPTIONS)

    batch = tokenizer(CAPTIONS[::-1], padding=True, truncation=True, max_length=64, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # padding is really involved
    with torch.no_grad():
        expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
    cached = cache.lookup(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(cached, expected, atol=1e-5, rtol=1e-5)

    unknown = tokenizer(["a red ring", "a dot"], padding=True, return_tensors="pt")
    assert cache.lookup(unknown["input_ids"], unknown["attention_mask"]) is None


def test_cls_features_keep_only_their_own_rows():
    hidden = torch.randn(8, 30, 16)
    rows = cls_features(hidden)
    torch.testing.assert_close(rows, hidden[:, 0, :])
    assert rows.untyped_storage().nbytes() == rows.numel() * rows.element_size()  # not the batch's 8 x 30 x 16
