"""The synthetic profile's CLIP, trained by the reference on the grading budget, retrieves what the report's
example queries name, judged by the generator's ground truth; a loss whose targets are all zero does not.
Real reference code, the real prepared profile; the wrong loss is the corpus's mutant "targets-all-zero"."""

import json
import types

import pytest
import torch

from autograder.assignment.namespace import reference_namespace
from autograder.data import synthetic
from autograder.grading import retrieval
from autograder.profiles.layout import PreparedPaths
from autograder.profiles.profile import load_profile
from autograder.training import runs
from tests.corpus.mutants_7_2 import MUTANTS

# Measured on the synthetic profile (bench/clip_retrieval.py --seeds 3): the reference's precision at 8 was
# 0.88-1.00 for "a vertical bar" and 0.83-1.00 for "four yellow dots" (of which the validation split holds 6), the
# all-zero targets' 0.00-0.12 for each, 0.04-0.12 on average over 14 queries. "Most of the top 8" is 5 of 8.
REFERENCE_AT_LEAST = 0.6
WRONG_AT_MOST = 0.4
# Held-out caption matching (retrieval.caption_matching), same runs: the reference 0.647-0.677, the all-zero targets
# 0.027-0.035 (chance, one caption of 32, is 0.031).
MATCHING_OF_NO_TRAINING_AT_MOST = 0.1


@pytest.fixture(scope="module")
def setting(synthetic_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PS7_CACHE", str(synthetic_cache))
        ns = reference_namespace("synthetic")
        profile = load_profile("synthetic")
        data = runs.RunData.load(profile)
        pairs = json.loads(PreparedPaths(profile.cache_dir()).clip_pairs.read_text())
    return types.SimpleNamespace(ns=ns, profile=profile, data=data, val_pairs=pairs["val"])


@pytest.fixture(scope="module")
def shown(setting, tmp_path_factory) -> list[dict[str, str]]:
    """What each validation image shows: the generator, run again with the profile's seed, says."""
    profile = setting.profile
    by_name = synthetic.generate_flickr8k(
        tmp_path_factory.mktemp("flickr"), profile.data["seed"] + 1, profile.data["flickr8k"]["images"]
    )
    return [by_name[name] for name, _ in setting.val_pairs]


def _trained(setting, clip_model) -> tuple[types.SimpleNamespace, torch.nn.Module]:
    ns = types.SimpleNamespace(**{**setting.ns.__dict__, "CLIPModel": clip_model})
    profile = setting.profile
    dims = profile.backbones["image"]["embedding_dim"], profile.backbones["text"]["dim"]
    model, _ = runs.train_clip_model(ns, setting.data, profile.grading_budgets.clip_epochs, profile.seed, *dims)
    return ns, model


def _precision(setting, shown, ns, model) -> dict[str, float]:
    queries = tuple(setting.profile.example_queries)
    k = retrieval.RETRIEVED_PER_QUERY
    return retrieval.retrieval_precision(ns, model, setting.data.clip_val, shown, queries, k)


def _matching(setting, ns, model) -> float:
    return retrieval.caption_matching(ns, model, setting.data.clip_val, setting.data.clip_val_captions)


def test_the_generator_knows_what_the_prepared_validation_images_show(setting, shown):
    for (_, caption), truth in zip(setting.val_pairs, shown, strict=True):
        named = synthetic.named_attributes(caption)
        assert named is not None and named.items() <= truth.items(), (caption, truth)


def test_the_reference_clip_retrieves_what_the_example_queries_name(setting, shown):
    ns, model = _trained(setting, setting.ns.CLIPModel)
    precision = _precision(setting, shown, ns, model)
    assert all(value >= REFERENCE_AT_LEAST for value in precision.values()), precision
    assert _matching(setting, ns, model) >= setting.profile.thresholds.clip_matching


def test_targets_all_zero_retrieve_visibly_worse(setting, shown, synthetic_cache):
    [mutant] = [mutant for mutant in MUTANTS if mutant.name == "targets-all-zero"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PS7_CACHE", str(synthetic_cache))
        wrong = reference_namespace("synthetic", mutant.replacements)
    ns, model = _trained(setting, wrong.CLIPModel)
    precision = _precision(setting, shown, ns, model)
    assert sum(precision.values()) / len(precision) <= WRONG_AT_MOST, precision
    assert _matching(setting, ns, model) <= MATCHING_OF_NO_TRAINING_AT_MOST


def test_a_query_ranks_the_images_the_same_on_every_call(setting):
    """The notebook's `embed_images` leaves the model training; the frozen DistilBERT's dropout (0.1) would then
    change an uncached query's embedding from call to call, and with it the report's grid and the precision."""
    profile = setting.profile
    torch.manual_seed(0)
    model = setting.ns.CLIPModel(
        temperature=0.07,
        image_embedding=profile.backbones["image"]["embedding_dim"],
        text_embedding=profile.backbones["text"]["dim"],
    )
    queries = ("a vertical bar, seen from above", "four yellow dots on something")
    first = retrieval.retrieval_ranking(setting.ns, model, setting.data.clip_val[:200], queries, 20)
    again = retrieval.retrieval_ranking(setting.ns, model, setting.data.clip_val[:200], queries, 20)
    assert torch.equal(first, again)
    assert model.training
