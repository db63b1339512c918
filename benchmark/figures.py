"""One look for every figure of the suite: a colour per model family (and a marker), fixed, so
ViT is the same colour in every study's figures and a reader never has to re-learn a legend."""

from __future__ import annotations

from itertools import cycle

import seaborn as sns

from benchmark import sizes

# The families as reports display them (benchmark.sizes.family: "ViT", "BiT", "hybrid"), in the
# registry's order, so a family registered before the figures are imported gets its look too.
FAMILY_ORDER = tuple(family.label for family in sizes.FAMILIES.values())
# seaborn's colour-blind palette and a marker, one entry per family in FAMILY_ORDER.
FAMILY_COLORS = dict(
    zip(FAMILY_ORDER, sns.color_palette("colorblind", len(FAMILY_ORDER)).as_hex(), strict=True)
)
FAMILY_MARKERS = dict(zip(FAMILY_ORDER, cycle("osD^vPX*")))
# For verdict outcomes in the scorecard's charts.
OUTCOME_COLORS = {"reproduced": "#1b9e77", "contradicted": "#d95f02", "inconclusive": "#7f7f7f"}
