"""Server settings: one pydantic model, every ``finextract serve`` flag maps to one field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """How to serve a run. Limits exist so one client cannot starve the others or the memory."""

    model_config = ConfigDict(extra="forbid")
    run_dir: str = Field(..., description="trained run directory to serve")
    checkpoint: str = Field("best", description="'best', 'last', 'step-N' or a checkpoint path")
    host: str = Field("127.0.0.1", description="interface to bind (loopback by default: expose deliberately)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port)")
    max_batch: int = Field(64, ge=1, description="most texts sent to one predict() call")
    max_wait_ms: float = Field(5.0, ge=0, description="how long the first queued text waits for company")
    timeout_s: float = Field(30.0, gt=0, description="per-request deadline; later requests get 504")
    max_texts: int = Field(256, ge=1, description="most texts in one request")
    max_chars: int | None = Field(None, ge=1, description="longest accepted text (default: the task's max_text_chars)")
    runtime: Literal["torch", "onnx"] = Field("torch", description="torch, or onnx: the ONNX Runtime variant "
                                             "export-onnx chose (a quantized one only with a recorded F1 delta)")
    graceful_shutdown_s: float = Field(30.0, ge=0, description="how long shutdown waits for in-flight requests")
