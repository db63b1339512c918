"""One look for every figure of the suite: a colour per model family (and a marker), fixed, so
ViT is the same colour in every study's figures and a reader never has to re-learn a legend."""

from __future__ import annotations

import seaborn as sns

FAMILY_ORDER = ("ViT", "BiT", "hybrid")
# seaborn's colour-blind palette, one entry per family in FAMILY_ORDER.
FAMILY_COLORS = dict(zip(FAMILY_ORDER, sns.color_palette("colorblind", 3).as_hex(), strict=True))
FAMILY_MARKERS = {"ViT": "o", "BiT": "s", "hybrid": "D"}
# For verdict outcomes in the scorecard's charts.
OUTCOME_COLORS = {"reproduced": "#1b9e77", "contradicted": "#d95f02", "inconclusive": "#7f7f7f"}
