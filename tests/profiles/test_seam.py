"""The notebook's provided code under PS7_PROFILE: prepared data, backbones, sizes and cached text outputs."""

import pytest
import torch

from autograder.assignment.namespace import reference_namespace


def test_provided_code_takes_everything_from_the_prepared_profile(synthetic):
    ns = reference_namespace("synthetic")
    assert ns.SETUP.name == "synthetic"
    assert ns.SETUP.ae_epochs == synthetic.budgets.ae_epochs
    image_encoder = ns.ImageEncoder()
    features = image_encoder(torch.rand(2, 3, 64, 64))
    assert features.shape == (2, ns.SETUP.image_embedding)
    assert all(parameter.requires_grad for parameter in image_encoder.parameters())
    text_encoder = ns.TextEncoder()
    assert not any(parameter.requires_grad for parameter in text_encoder.parameters())


def test_text_encoder_serves_cached_outputs_equal_to_running_the_model(synthetic):
    ns = reference_namespace("synthetic")
    text_encoder = ns.TextEncoder()
    captions = [caption for _, caption in ns.read_captions(ns.SETUP.flickr8k_root)[::50][:6]]
    batch = ns.TOKENIZER(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")
    cached = text_encoder(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        computed = text_encoder.model(**batch).last_hidden_state[:, 0, :]
    assert ns.SETUP.cached_text_features(batch["input_ids"], batch["attention_mask"]) is not None
    torch.testing.assert_close(cached, computed, atol=1e-5, rtol=1e-5)

    novel = ns.TOKENIZER(["a caption nobody wrote before"], return_tensors="pt")
    assert ns.SETUP.cached_text_features(novel["input_ids"], novel["attention_mask"]) is None
    assert text_encoder(novel["input_ids"], novel["attention_mask"]).shape == (1, ns.SETUP.text_embedding)


def test_the_reference_with_replacements_runs_the_changed_code_and_refuses_an_ambiguous_one(synthetic):
    """How a benchmark or a test runs the reference with one of the corpus's bugs; a replacement whose text is not
    there exactly once fails loudly, rather than silently running the reference."""
    changed = reference_namespace("synthetic", [('"temperature": 0.07', '"temperature": 0.5')])
    assert changed.CLIP_CONFIG["temperature"] == 0.5
    assert reference_namespace("synthetic").CLIP_CONFIG["temperature"] == 0.07
    with pytest.raises(ValueError, match="occurs 0 times"):
        reference_namespace("synthetic", [("no such line", "")])
    with pytest.raises(ValueError, match="occurs [2-9]\\d* times"):
        reference_namespace("synthetic", [("import torch\n", "")])
