"""The comparison baseline: the example pipeline with squeeze-and-excitation taken out, nothing else changed.

Same data, optimiser, schedule, budget and seeds as ``digits.py``; only the model factory differs. The
"Why squeeze-and-excitation" page compares the two (``traindoc compare digits-plain digits``).
"""

from __future__ import annotations

import digits
import torch
from se_cnn import SECNN


def model() -> torch.nn.Module:
    return SECNN(width=32, se=False)


pipeline = digits.pipeline.model_copy(
    update={
        "name": "digits-plain",
        "description": "The example CNN without squeeze-and-excitation: the baseline for the comparison.",
        "model": digits.pipeline.model.model_copy(update={"factory": model}),
    }
)
