"""One place for defaults: params.yaml and the parameter classes agree."""

from __future__ import annotations

from dataclasses import asdict

import yaml

from pipeline.classifiers.registry import KINDS
from pipeline.config import ModelParams, Params, load_params
from tests.conftest import REPO

PARAMS_YAML = REPO / "params.yaml"


def test_model_defaults_are_those_of_params_yaml():
    """Code that builds Params() (no params.yaml, or a section left out) trains the model
    params.yaml names, with the same settings: every key of the ``model:`` section."""
    raw = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))["model"]
    assert ModelParams().kind == raw["kind"]
    assert asdict(ModelParams()) == raw
    assert load_params(PARAMS_YAML).model == ModelParams()


def test_every_default_is_that_of_params_yaml():
    """One place for defaults: a Params built in code (no params.yaml, or a key left out)
    is the one params.yaml gives, section by section."""
    assert asdict(Params()) == asdict(load_params(PARAMS_YAML))


def test_the_default_kind_is_one_the_registry_builds():
    assert Params().model.kind in KINDS


def test_a_fallback_target_that_is_not_a_share_is_refused():
    import pytest

    from pipeline.config import ThresholdParams

    with pytest.raises(ValueError, match="max_unlabelled"):
        ThresholdParams(max_unlabelled=1.5)
    with pytest.raises(ValueError, match="fallback_min_ratio"):
        ThresholdParams(fallback_min_ratio=0)
    assert ThresholdParams(max_unlabelled=None).max_unlabelled is None
