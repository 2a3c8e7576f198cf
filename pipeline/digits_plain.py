"""The comparison baseline: the example pipeline with squeeze-and-excitation taken out, nothing else changed.

Same data, optimiser, schedule, budget and seeds as ``digits.py``; only the model factory differs. The
"Why squeeze-and-excitation" page compares the two (``traindoc compare digits-plain digits``).
"""

from __future__ import annotations

import torch
from digits import pipeline as with_se
from se_cnn import SECNN


def model() -> torch.nn.Module:
    return SECNN(width=32, se=False)


pipeline = with_se.model_copy(
    update={
        "name": "digits-plain",
        "description": "The example CNN without squeeze-and-excitation: the baseline for the comparison.",
        "model": with_se.model.model_copy(update={"factory": model}),
    }
)
