"""``CausalRunConfig``: LoRA SFT of a Hugging Face causal LM. Defaults = study 2's recipe."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finextract.config import BaseRunConfig, LoraBase, StepTrainBase


class ModelSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name_or_path: str = Field(..., description="hub id, local folder, .gguf file, or an offline catalog name "
                              "(`finextract models`: smollm2-135m-instruct, gemma3-270m)")
    gguf_file: str | None = Field(None, description="a GGUF file inside the folder name_or_path (converted once "
                                  "into a cached plain folder; docs/causal-lm.md)")
    precision: Literal["bf16", "fp16", "fp32"] = Field("bf16", description="weights/compute dtype (bf16 needs a GPU)")
    attn_implementation: str | None = Field("sdpa", description="'sdpa', 'eager', 'flash_attention_2' or null")
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _join_gguf_file(self) -> "ModelSection":
        """``name_or_path: folder`` + ``gguf_file: x.gguf`` -> ``folder/x.gguf`` (idempotent)."""
        if self.gguf_file and not self.name_or_path.lower().endswith(".gguf"):
            from pathlib import Path

            self.name_or_path = str(Path(self.name_or_path) / self.gguf_file)
        return self


class PromptSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("style")
    @classmethod
    def _known_style(cls, v: str) -> str:
        from finextract.prompts import style_names

        if v not in style_names():
            raise ValueError(f"unknown prompt style {v!r}; registered styles: {list(style_names())}")
        return v
    style: str = Field("json-only", description="a registered prompt style (finextract.prompts.style_names())")
    enable_thinking: bool | None = Field(None, description="passed to the chat template when set (Qwen 3 style)")


class LoraSection(LoraBase):
    rank: int = Field(8, gt=0)
    alpha: float = 16
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="module names to adapt, or 'all-linear'")


class TrainSection(StepTrainBase):
    learning_rate: float = Field(1e-4, gt=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    epochs: float = Field(6, gt=0)
    max_steps: int | None = Field(None, description="stop after this many optimizer steps (overrides epochs)")
    batch_size: int = Field(4, gt=0, description="micro-batch of records per device")
    gradient_accumulation: int = Field(4, gt=0, description="effective batch = batch_size x this x GPUs")
    max_length: int = Field(1024, gt=8, description="prompt + answer tokens; longer records are refused")
    checkpoint_every: int = Field(200, gt=0, description="checkpoint (and score) every N optimizer steps")
    log_every: int = Field(10, gt=0)
    loss: Literal["naive", "answer-only"] = Field(
        "answer-only", description="'naive' = logits at every position; 'answer-only' = lm_head only at supervised positions")
    ce_chunk: int | None = Field(None, description="answer-only: compute lm_head+CE in chunks of N tokens (less memory)")
    packing: bool = Field(False, description="pack records into rows of max_length (padding-free, per-sequence positions)")
    group_by_length: bool = Field(False, description="batch records of similar length (less padding)")
    gradient_checkpointing: bool = False
    torch_compile: bool = Field(False, description="compile each decoder layer (cuts kernel-launch overhead)")
    pad_to_multiple: int | None = Field(None, description="round padded batch width up to a multiple (fewer shapes to compile)")

    # read-only aliases of the old names, for code written against them
    @property
    def per_device_batch(self) -> int:
        return self.batch_size

    @property
    def save_steps(self) -> int:
        return self.checkpoint_every

    @property
    def logging_steps(self) -> int:
        return self.log_every


class DecodingSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: Literal["generate", "engine"] = Field(
        "generate", description="'generate' = batched HF generate; 'engine' = the constrained extraction engine")
    constrained: bool = True
    max_new_tokens: int = Field(256, gt=0)
    batch_size: int = Field(16, gt=0)


class CausalRunConfig(BaseRunConfig):
    """LoRA SFT of a causal LM on chat-formatted extraction prompts."""

    backend: Literal["causal_lm"] = "causal_lm"
    model: ModelSection
    prompt: PromptSection = Field(default_factory=PromptSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    decoding: DecodingSection = Field(default_factory=DecodingSection)

    DEPRECATED_NAMES: ClassVar[dict[str, str]] = {
        "train.per_device_batch": "train.batch_size",
        "train.save_steps": "train.checkpoint_every",
        "train.logging_steps": "train.log_every",
    }
