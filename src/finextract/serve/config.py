"""Server settings: one pydantic model, every ``finextract serve`` flag maps to one field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

API_KEY_ENV = "FINEXTRACT_API_KEY"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ServeConfig(BaseModel):
    """How to serve a run. Limits exist so one client cannot starve the others or the memory.

    The API key itself is never a field (it would show up in dumps and logs): it is read from
    ``api_key_file`` or the ``FINEXTRACT_API_KEY`` environment variable by :func:`load_api_key`.
    """

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
    ensemble: list[str] = Field(default_factory=list, description="more encoder runs whose token logits are "
                                "averaged with run_dir's before decoding (same tokenizer, max_length and heads)")
    runtime: Literal["torch", "onnx"] = Field("torch", description="torch, or onnx: the ONNX Runtime variant "
                                             "export-onnx chose (a quantized one only with a recorded F1 delta)")
    graceful_shutdown_s: float = Field(30.0, ge=0, description="how long shutdown waits for in-flight requests")
    # security
    api_key_file: str | None = Field(None, description=f"file holding the bearer token (else ${API_KEY_ENV})")
    metrics_public: bool = Field(False, description="serve /metrics without the API key (e.g. for a scraper)")
    max_body_bytes: int = Field(4 << 20, ge=1024, description="largest request body (413 above, checked while reading)")
    header_timeout_s: float = Field(10.0, gt=0, description="a client must send its request line and headers within this")
    body_timeout_s: float = Field(30.0, gt=0, description="a client must send its whole body within this (408 after)")
    keep_alive_s: int = Field(5, ge=1, description="an idle keep-alive connection is closed after this")
    max_header_bytes: int = Field(16384, ge=1024, description="largest request line + headers (h11 limit; 431/400 above)")
    max_connections: int = Field(1000, ge=1, description="open connections + requests at once (uvicorn answers 503 above)")
    access_log: bool = Field(True, description="one JSON line per request on stderr (logger finextract.access)")
    log_texts: bool = Field(False, description="include the request texts in the access log (off: they are customer data)")


def load_api_key(config: ServeConfig) -> bytes | None:
    """The bearer token, from ``api_key_file`` or ``$FINEXTRACT_API_KEY``; ``None`` when neither is set."""
    if config.api_key_file:
        path = Path(config.api_key_file)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the API key file: {exc}") from None
        if not key:
            raise ValueError(f"{path}: the API key file is empty")
    else:
        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            return None
    if len(key) < 16:
        raise ValueError(f"the API key is {len(key)} characters long; use at least 16 random characters "
                         "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return key.encode("utf-8")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
