import dataclasses

import pytest

from benchmark.config import (
    RunConfig,
    apply_overrides,
    canonical_json,
    flatten,
    from_dict,
    parse_overrides,
    run_id,
    steps_for_epochs,
    to_dict,
)
from benchmark.errors import UserError


def test_overrides_are_typed():
    cfg = apply_overrides(
        RunConfig(),
        parse_overrides(
            [
                "optim.lr=3e-4",
                "optim.steps=1e3",
                "model.pos_embed=2d",
                "eval.shots=1,5",
                "seed=7",
                "model.prelogits=false",
            ]
        ),
    )
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.optim.steps == 1000 and isinstance(cfg.optim.steps, int)
    assert cfg.model.pos_embed == "2d"
    assert cfg.eval.shots == (1, 5)
    assert cfg.seed == 7
    assert cfg.model.prelogits is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("nope.lr=1", "unknown config key 'nope.lr'"),
        ("optim=1", "is a section"),
        ("optim.lr=fast", "not a valid float"),
        ("optim.steps=1.5", "not a valid int"),
        ("model.pos_embed=3d", "choose one of: none, 1d, 2d, relative"),
        ("model.prelogits=maybe", "not a valid bool"),
        ("seed.x=1", "not a section"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(UserError, match=message):
        apply_overrides(RunConfig(), parse_overrides([override]))


def test_malformed_override():
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_overrides(["optim.lr"])


def test_run_id_is_a_stable_hash_of_the_config():
    a, b = RunConfig(), RunConfig()
    assert run_id(a) == run_id(b)
    assert len(run_id(a)) == 12
    assert run_id(a.replace(seed=1)) != run_id(a)
    assert run_id(a.replace(**{"optim.lr": 2e-3})) != run_id(a)
    # canonical: key order does not matter
    assert canonical_json(from_dict(dict(reversed(list(to_dict(a).items()))))) == canonical_json(a)


def test_round_trip_and_flatten():
    cfg = RunConfig().replace(**{"model.pos_embed": "relative", "eval.fewshot_datasets": "digits"})
    assert from_dict(to_dict(cfg)) == cfg
    flat = flatten(cfg)
    assert flat["model.pos_embed"] == "relative" and flat["seed"] == 0
    assert set(flat) >= {"optim.lr", "data.dataset", "eval.shots"}


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().seed = 3  # type: ignore[misc]


def test_from_dict_rejects_unknown_keys():
    data = to_dict(RunConfig())
    data["optim"]["momentum"] = 0.9
    with pytest.raises(UserError, match="momentum"):
        from_dict(data)


def test_steps_for_epochs():
    assert steps_for_epochs(1, 4000, 128) == 32
    assert steps_for_epochs(0.001, 10, 128) == 1


def test_model_shape_fields_are_overrides_and_change_the_run_id():
    cfg = apply_overrides(RunConfig(), parse_overrides(["model.depth=6", "model.width=96", "model.patch=7"]))
    assert (cfg.model.depth, cfg.model.width, cfg.model.patch, cfg.model.heads, cfg.model.mlp) == (
        6,
        96,
        7,
        0,
        0,
    )
    assert run_id(cfg) != run_id(RunConfig()) != run_id(RunConfig().replace(**{"model.depth": 2}))
    assert flatten(cfg)["model.depth"] == 6
    with pytest.raises(UserError, match=r"model\.depth='two' is not a valid int"):
        apply_overrides(RunConfig(), {"model.depth": "two"})
