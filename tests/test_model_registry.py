"""The model-family registry (benchmark.sizes.FAMILIES): the paper's three families as records, and
a new family as one registered record. A toy family, an MLP on average-pooled pixels spelled
"Toy/P", registered by this module alone, is read, priced, validated, built and trained by the
engine's own entry points, none of which names it."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from benchmark import cost, flops, sizes, train
from benchmark.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig
from benchmark.errors import UserError
from benchmark.models import build_model, validate_model
from benchmark.sizes import ModelFamily, ModelShape, ParsedModel

# --- the toy family: everything about it is here ----------------------------------------------

_TOY_RE = re.compile(r"toy/(?P<pool>[0-9]+)", re.IGNORECASE)
HIDDEN = 32


def _parse_toy(text: str) -> ParsedModel | None:
    match = _TOY_RE.fullmatch(text)
    return None if match is None or int(match["pool"]) < 1 else ParsedModel("toy", patch=int(match["pool"]))


def _resolve_toy(parsed: ParsedModel, cfg: ModelConfig) -> ModelShape:
    return ModelShape("toy", None, cfg.patch or parsed.patch, (), 0)


class ToyNet(nn.Module):
    """Average-pool P×P blocks of pixels, then an MLP with a zero-initialised classifier."""

    def __init__(self, pool: int, inputs: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(inputs, HIDDEN), nn.GELU())
        self.head = nn.Linear(HIDDEN, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.pool(x)))


def build_toy(cfg: ModelConfig, shape: ModelShape, num_classes: int, img_size: int, in_chans: int) -> ToyNet:
    return ToyNet(shape.patch, in_chans * (img_size // shape.patch) ** 2, num_classes)


TOY = ModelFamily(
    name="toy",
    label="Toy",
    noun="toy MLP",
    forms="toy MLP Toy/P with P dividing the image (e.g. Toy/4)",
    parse=_parse_toy,
    spell=lambda parsed: f"Toy/{parsed.patch}",
    resolve=_resolve_toy,
    build=f"{__name__}:build_toy",
    fields=("patch",),
    patch_name="toy's pooling",
    prelogits=False,
)


@pytest.fixture
def toy():
    """The toy family, registered for one test and removed after it, so no other test sees it."""
    sizes.register_family(TOY)
    yield TOY
    del sizes.FAMILIES[TOY.name]


def toy_params(pool: int, img_size: int = 28, classes: int = 10) -> int:
    inputs = (img_size // pool) ** 2
    return inputs * HIDDEN + HIDDEN + HIDDEN * classes + classes


# --- the paper's families -------------------------------------------------------------------


def test_the_papers_families_are_registered_in_order_with_their_display_labels():
    assert [(f.name, f.label) for f in sizes.FAMILIES.values()] == [
        ("vit", "ViT"),
        ("bit", "BiT"),
        ("hybrid", "hybrid"),
    ]
    assert [sizes.family(a) for a in ("B/16", "R50x1", "R50x1+B/16")] == ["ViT", "BiT", "hybrid"]
    assert sizes.family_of("BiT-R50x1") is sizes.FAMILIES["bit"]


def test_the_facts_other_modules_ask_agree_with_the_family_names_they_used_to_test():
    """evals and flops still test `family != "bit"` (see benchmark.sizes): the records say the same."""
    for family in sizes.FAMILIES.values():
        is_bit = family.name == "bit"
        assert bool(family.patch_name) is not is_bit  # a token grid tiling the image, position tables
        assert family.prelogits is not is_bit  # §3.1's tanh head
        assert family.channels_last is (family.name != "vit")  # convolutions carry the compute


def test_a_family_name_registers_once():
    with pytest.raises(ValueError, match="'vit' is already registered"):
        sizes.register_family(sizes.FAMILIES["vit"])


# --- a new family is one registered record --------------------------------------------------


def test_the_toy_family_exists_only_where_registered():
    assert "toy" not in sizes.FAMILIES
    with pytest.raises(UserError, match="unknown model 'Toy/4'") as err:
        sizes.parse_model("Toy/4")
    assert "Toy/P" not in str(err.value)


def test_a_registered_family_is_read_by_its_own_grammar(toy):
    # "Toy/4" is also a ViT's SIZE/PATCH form with an unknown size: the ViT's grammar leaves it.
    parsed = sizes.parse_model(" toy/4 ")
    assert parsed == ParsedModel("toy", patch=4) and parsed.name == "Toy/4"
    assert sizes.family("Toy/4") == "Toy" and sizes.family_of("Toy/4") is toy
    assert sizes.resolve_model(ModelConfig(arch="Toy/4", patch=7)) == ModelShape("toy", None, 7, (), 0)
    # The unknown-model error lists it with the others.
    with pytest.raises(UserError) as err:
        sizes.parse_model("Toy/x")
    assert str(err.value).endswith("(e.g. R50x1+B/16); toy MLP Toy/P with P dividing the image (e.g. Toy/4)")
    # The paper's families read as before.
    assert sizes.parse_model("B/16").family == "vit" and sizes.parse_model("R50x1+B/16").family == "hybrid"


def test_a_registered_family_is_validated_by_its_record(toy):
    with pytest.raises(UserError, match=r"does not apply to the toy MLP 'Toy/4'; set model\.prelogits=false"):
        validate_model(ModelConfig(arch="Toy/4"))
    with pytest.raises(UserError) as err:
        validate_model(ModelConfig(arch="Toy/4", prelogits=False, depth=2))
    assert (
        str(err.value)
        == "model.depth=2 applies to ViTs and hybrids, not to the toy MLP 'Toy/4'; leave it at 0"
    )
    with pytest.raises(UserError, match="applies to BiT ResNets and hybrids, not to the toy MLP"):
        validate_model(ModelConfig(arch="Toy/4", prelogits=False, resnet_width=16))
    with pytest.raises(UserError, match="image size 30 is not a multiple of the toy's pooling 4"):
        build_model(ModelConfig(arch="Toy/4", prelogits=False), 10, 30, 1)
    # A field it reads is its own: the patch field sets its pooling.
    assert validate_model(ModelConfig(arch="Toy/4", prelogits=False, patch=7)).patch == 7
    # A field only it reads is refused by the paper's families, which name it among the readers.
    with pytest.raises(
        UserError, match=r"model\.patch=4 applies to ViTs, hybrids and toy MLPs, not to the BiT"
    ):
        validate_model(ModelConfig(arch="R14x1", prelogits=False, patch=4))


def test_a_registered_family_is_priced(toy):
    cfg = RunConfig(
        model=ModelConfig(arch="Toy/4", prelogits=False),
        data=DataConfig(dataset="mnist5k"),
        optim=OptimConfig(steps=10, batch_size=32, warmup_steps=1),
    )
    per_image = flops.meta_train_flops_per_image(cfg.model, 28, 1, 10)
    assert per_image > 0
    # The shipped table measured no toy: no time, and the reason names the family as reports do.
    priced = cost.run_cost(cfg, cost.load_table())
    assert priced.flops == 320 * per_image and priced.model == "Toy/4"
    assert (priced.seconds, priced.basis) == (
        None,
        "no estimate: the table measured no Toy model with its FLOPs per image",
    )
    # A table that measured another toy times it at that toy's achieved FLOP/s, the paper's families apart.
    measured = cost.Measured("Toy/2", 28, 1000.0, 4 * per_image, "eager")
    table = cost.ThroughputTable("cpu", "test", (*cost.load_table().rows, measured))
    priced = cost.run_cost(cfg, table)
    assert priced.seconds == pytest.approx(320 / 4000) and priced.basis.startswith(
        "extrapolated from Toy/2 @28px"
    )


def test_a_registered_family_builds_and_trains_through_the_trainer(toy, tmp_path, monkeypatch):
    model = ModelConfig(arch="Toy/4", prelogits=False)
    torch.manual_seed(0)
    built = build_model(model, 10, 28, 1)
    assert isinstance(built, ToyNet) and sum(p.numel() for p in built.parameters()) == toy_params(4)
    cfg = RunConfig(
        model=model,
        data=DataConfig(dataset="mnist5k", train_examples=64),
        optim=OptimConfig(steps=1, warmup_steps=0, batch_size=32),
        eval=EvalConfig(evaluators=("upstream",), fewshot_datasets=()),
    )
    monkeypatch.setattr(train, "_PROCESS_TRAINED", False)
    result = train.run(cfg, tmp_path / "run")
    assert result["status"] == "done", result
    assert result["params"] == toy_params(4) and result["patch_grid"] is None
    assert result["train_flops_per_image"] == flops.meta_train_flops_per_image(model, 28, 1, 10)
    # One step moved the weights away from the seed's (the zero head first of all).
    trained = torch.load(tmp_path / "run" / train.MODEL, weights_only=True)
    assert not torch.equal(trained["head.weight"], built.state_dict()["head.weight"])
