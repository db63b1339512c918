"""The paper's heads: the tanh pre-training head (§3.1) and the fine-tuning head (§3.1, §3.2).

timm dropped `representation_size`, so the tanh hidden layer lives here. Both heads end in a
zero-initialised Linear, as in the original code (`head_zeroinit`): a fresh model outputs all-zero
logits.
"""

from __future__ import annotations

import torch
from timm.layers import lecun_normal_
from torch import nn

REPRESENTATIONS = ("pre_tanh", "post_tanh")


def _zero_(layer: nn.Linear | nn.Conv2d) -> None:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


class TanhHead(nn.Module):
    """§3.1 pre-training head: an MLP with one tanh hidden layer of width D, then Linear(D, K).

    `pre_logits` (Linear(D, D) → tanh) is the representation linear few-shot reads (§4.1); `fc`
    is the zero-initialised classifier.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.pre_logits = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.fc = nn.Linear(dim, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        # The original code's pre-logits layer is a default Flax Dense: LeCun-normal kernel, zero
        # bias. (timm's "jax" init would zero every Linear under `head`, killing the tanh layer.)
        lecun_normal_(self.pre_logits[0].weight)
        nn.init.zeros_(self.pre_logits[0].bias)
        _zero_(self.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pre_logits(x))


def pre_logits(model: nn.Module, x: torch.Tensor, representation: str = "pre_tanh") -> torch.Tensor:
    """(B, D) frozen representation for linear few-shot (§4.1). With the tanh pre-logits head:
    the hidden layer's output before the tanh ("pre_tanh", the paper-era few-shot features;
    big_vision later moved the tanh inside: "In the past we did not include tanh in pre_logits")
    or after it ("post_tanh"). Without that head: the pooled feature (class token or GAP); for a
    BiT ResNet, its globally averaged final features (the representation choice only matters for
    the tanh head).

    Runs in whatever mode the model is in: call `model.eval()` first so dropout is off.
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    if isinstance(model.head, TanhHead):
        dense, tanh = model.head.pre_logits
        feats = dense(feats)
        if representation == "post_tanh":
            feats = tanh(feats)
    return feats


def replace_head(model: nn.Module, num_classes: int) -> None:
    """Fine-tuning (§3.1): drop the whole pre-training head, tanh layer included, and install one
    zero-initialised classifier on the pooled feature: nn.Linear(D, num_classes) for a ViT or
    hybrid, a 1×1 conv (timm's ResNetV2 head) for a BiT."""
    model.reset_classifier(num_classes)  # timm: a fresh classifier on the model's device and dtype
    _zero_(model.get_classifier())
