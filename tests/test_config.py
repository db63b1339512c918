import dataclasses
import json
import typing

import pytest

from benchmark import cli
from benchmark.config import (
    EXCLUSIVE,
    LIMITS,
    RunConfig,
    apply_overrides,
    canonical_json,
    check,
    flatten,
    from_dict,
    parse_overrides,
    run_id,
    steps_for_epochs,
    to_dict,
)
from benchmark.errors import UserError
from benchmark.study import list_studies, load_study


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


def test_a_field_added_later_keeps_run_ids_at_its_default_and_changes_them_when_set():
    cfg = RunConfig()
    # The id of the default config as published before the fine-tuning protocol fields existed; they are
    # stored flat (finetune_batch), the spelling of the ids published before eval.finetune was a section.
    assert run_id(cfg) == "17818bc8ba89"
    assert "finetune_batch" not in canonical_json(cfg)
    batch = cfg.replace(**{"eval.finetune.batch": 512})
    assert run_id(batch) != run_id(cfg) and '"finetune_batch":512' in canonical_json(batch)
    # config.json holds the canonical form; reading it back fills the omitted defaults
    assert from_dict(json.loads(canonical_json(batch))) == batch


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


# --- ranges and cross-field rules (config.check) -----------------------------------------------


def _numeric(tp) -> bool:
    inner = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp
    return inner in (int, float)


def test_every_numeric_field_has_a_range():
    """A new numeric field without a range would pass any value: add it to config.LIMITS."""
    hints = {}

    def walk(cls: type, prefix: str) -> None:  # sections nest (eval.finetune)
        for name, tp in typing.get_type_hints(cls).items():
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{name}.")
            else:
                hints[prefix + name] = tp

    walk(RunConfig, "")
    assert {k for k, tp in hints.items() if _numeric(tp)} == set(LIMITS)
    assert set(EXCLUSIVE) <= set(LIMITS)


def test_defaults_and_every_study_preset_pass_the_checks():
    check(RunConfig())
    for name in list_studies():
        study = load_study(name)
        for preset in study.presets:
            for cfg in study.runs(preset):
                check(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.steps=-5", "optim.steps=-5 is out of range: allowed [0, ∞)"),
        ("optim.steps=0", "optim.steps=0 with model.checkpoint='': a run pre-trains"),
        ("model.depth=-1", "model.depth=-1 is out of range: allowed [0, ∞)"),
        ("data.train_examples=-10", "data.train_examples=-10 is out of range: allowed [0, ∞)"),
        ("optim.batch_size=0", "optim.batch_size=0 is out of range: allowed [1, ∞)"),
        ("optim.lr=-1", "optim.lr=-1.0 is out of range: allowed (0, ∞)"),
        ("optim.lr=0", "optim.lr=0.0 is out of range: allowed (0, ∞)"),
        ("optim.lr=nan", "optim.lr=nan is out of range"),
        ("eval.shots=0", "eval.shots=0 is out of range: allowed [1, ∞)"),
        ("eval.shots=1,-5", "eval.shots=1,-5 is out of range: allowed [1, ∞)"),
        ("eval.fewshot_seeds=0", "eval.fewshot_seeds=0 is out of range: allowed [1, ∞)"),
        ("model.dropout=1", "model.dropout=1.0 is out of range: allowed [0, 1)"),
        ("eval.finetune.lrs=0.01,0", "eval.finetune.lrs=0.01,0.0 is out of range: allowed (0, ∞)"),
        ("optim.warmup_steps=400", "optim.warmup_steps=400 exceeds optim.steps=300"),
        ("optim.end_lr=0.1", "optim.end_lr=0.1 exceeds optim.lr=0.001"),
        ("eval.shots=", "eval.shots is empty"),
        ("eval.fewshot_datasets=", "eval.fewshot_datasets is empty"),
    ],
)
def test_out_of_range_and_contradictory_values_are_refused(override, message):
    cfg = apply_overrides(RunConfig(), parse_overrides([override]))
    with pytest.raises(UserError) as err:
        check(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_finetune_without_learning_rates_is_refused_only_when_finetuning():
    check(RunConfig().replace(**{"eval.finetune.lrs": ""}))  # not evaluated: nothing to choose
    with pytest.raises(UserError, match=r"eval\.finetune\.lrs is empty but eval\.evaluators runs finetune"):
        check(RunConfig().replace(**{"eval.finetune.lrs": "", "eval.evaluators": "upstream,finetune"}))


@pytest.mark.parametrize("override", ["optim.steps=-5", "eval.fewshot_datasets=", "optim.batch_size=0"])
def test_the_cli_refuses_bad_values_before_writing_anything(override, tmp_path, capsys):
    results = tmp_path / "results"
    for command in ("plan", "run"):
        code = cli.main(
            [command, "pos_embed", "--preset", "smoke", "--set", override, "--results", str(results)]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and override.split("=")[0] in err
    assert not results.exists()


def test_per_dataset_finetune_steps_are_checked():
    cfg = RunConfig().replace(**{"eval.finetune.steps_by_dataset": "cifar100=10000,pets=500"})
    check(cfg)
    with pytest.raises(UserError, match="each entry is DATASET=STEPS"):
        check(RunConfig().replace(**{"eval.finetune.steps_by_dataset": "cifar100:10000"}))
