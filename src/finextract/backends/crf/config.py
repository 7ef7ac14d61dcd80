"""Run config of the CRF baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from finextract.config import BaseRunConfig, TrainBase


class CrfModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    c1: float = Field(0.05, ge=0, description="L1 penalty (sparsity: drops useless features)")
    c2: float = Field(0.01, ge=0, description="L2 penalty")
    window: int = Field(2, ge=0, le=4, description="neighbour tokens on each side whose features each token sees")
    all_possible_transitions: bool = Field(True, description="learn weights for label transitions never seen in training")
    feature_minfreq: float = Field(0.0, ge=0, description="drop features seen fewer times than this")
    single_value: Literal["marginal", "first", "longest"] = Field(
        "marginal", description="how a single-valued key picks among several predicted spans")


class CrfTrainConfig(TrainBase):
    max_iterations: int = Field(150, ge=1, description="L-BFGS iterations of the last checkpoint")
    checkpoint_every: int = Field(50, ge=1, description="save and score a checkpoint every N iterations")


class CrfRunConfig(BaseRunConfig):
    """``backend: crf``: a linear-chain CRF over hand-made token features (python-crfsuite)."""

    backend: Literal["crf"] = "crf"
    model: CrfModelConfig = Field(default_factory=CrfModelConfig)
    train: CrfTrainConfig = Field(default_factory=CrfTrainConfig)
