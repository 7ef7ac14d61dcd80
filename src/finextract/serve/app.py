"""The FastAPI app: ``POST /v1/extract``, ``GET /health``, ``GET /metrics``, ``/openapi.json``.

The request body is read and parsed by hand (not by a FastAPI body parameter) so every
malformed request gets one precise 4xx message and no request can make the server buffer or
parse more than it allows: a body over ``max_body_bytes`` -> 413 (refused from its
Content-Length, or as soon as the bytes read pass the limit, never after reading it all), a
body that does not arrive within ``body_timeout_s`` -> 408, wrong content type -> 415,
unparseable JSON, a duplicate key, a number of more than 64 digits or nesting deeper than
Python's recursion limit -> 400, too many texts -> 413, wrong shape / empty / too long -> 422.
The OpenAPI document still describes the body (``openapi_extra``) so clients and fuzzers see
the real contract.

The interactive ``/docs`` and ``/redoc`` pages are disabled: FastAPI's pages load Swagger UI /
ReDoc scripts from a CDN, which a bank's network should not be asked to trust (or reach);
``/openapi.json`` stays, for any local viewer. No response carries a file-system path or a
stack trace: ``/health`` names the checkpoint, not where it lives, and a model failure is
reported as such with the details in the server log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from finextract.extractor import Extractor
from finextract.strictjson import loads_strict
from finextract.serve.batcher import MicroBatcher, ModelFailure
from finextract.serve.config import ServeConfig, load_api_key
from finextract.serve.metrics import ServeMetrics
from finextract.serve.security import Guard

log = logging.getLogger("finextract.serve")


class ExtractRequest(BaseModel):
    """Either one ``text`` or a list of ``texts`` (not both)."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, min_length=1, description="one text to extract from")
    texts: list[str] | None = Field(None, min_length=1, description="several texts, answered in order")


class ExtractResult(BaseModel):
    model_config = ConfigDict(extra="allow")  # plus the task's record field ("fields" or "entities")
    valid: bool = Field(description="false when the model produced no valid output for this text")
    error: str | None = Field(None, description="set when the model failed; the values are then empty")


class ExtractResponse(BaseModel):
    task: str
    results: list[ExtractResult]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_texts(payload: Any, max_texts: int, max_chars: int) -> list[str]:
    """Validate a decoded JSON body and return its texts; raises BadRequest with a clear message."""
    if not isinstance(payload, dict):
        raise BadRequest(422, f"request body must be a JSON object with 'text' or 'texts', got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"text", "texts"})
    if unknown:
        raise BadRequest(422, f"unknown field(s) {unknown}; send {{\"text\": \"...\"}} or {{\"texts\": [...]}}")
    has_text, has_texts = payload.get("text") is not None, payload.get("texts") is not None
    if has_text == has_texts:
        raise BadRequest(422, "send exactly one of 'text' (a string) or 'texts' (a list of strings)")
    if has_text:
        if not isinstance(payload["text"], str):
            raise BadRequest(422, f"'text' must be a string, got {type(payload['text']).__name__}")
        texts = [payload["text"]]
        names = ["text"]
    else:
        texts = payload["texts"]
        if not isinstance(texts, list):
            raise BadRequest(422, f"'texts' must be a list of strings, got {type(texts).__name__}")
        if not texts:
            raise BadRequest(422, "'texts' is empty")
        if len(texts) > max_texts:
            raise BadRequest(413, f"too many texts: {len(texts)} > max_texts={max_texts}; split the request")
        names = [f"texts[{i}]" for i in range(len(texts))]
    for name, t in zip(names, texts):
        if not isinstance(t, str):
            raise BadRequest(422, f"{name} must be a string, got {type(t).__name__}")
        if not t.strip():
            raise BadRequest(422, f"{name} is empty")
        if len(t) > max_chars:
            raise BadRequest(413 if len(texts) == 1 else 422,
                             f"{name} is {len(t)} characters long; the limit is max_chars={max_chars}")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(422, f"{name} contains invalid Unicode (a lone surrogate)") from None
    return texts


def _without_paths(value: Any) -> Any:
    """``value`` with every string that looks like a file-system path reduced to its last part."""
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, str) and ("/" in value or "\\" in value) and not value.startswith(("http://", "https://")):
        return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return value


def _describe(extractor: Extractor) -> dict[str, Any]:
    try:
        return _without_paths(json.loads(json.dumps(extractor.describe(), default=str)))
    except Exception:  # describe() is informational; never fail /health on it
        return {"backend": type(extractor).__name__}


class _BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refusing it (BadRequest 413) as soon as it is known to pass ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise BadRequest(413, f"request body of {int(declared)} bytes is over max_body_bytes={limit}")
    chunks: list[bytes] = []
    size = 0

    async def _read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)

    try:
        await asyncio.wait_for(_read(), timeout_s)
    except _BodyTooLarge:
        raise BadRequest(413, f"request body is over max_body_bytes={limit}") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise BadRequest(408, f"request body not received within body_timeout_s={timeout_s}") from None
    return b"".join(chunks)


def create_app(config: ServeConfig, extractor: Extractor | None = None) -> FastAPI:
    """Build the app. ``extractor`` defaults to loading ``config.run_dir`` (tests may pass one)."""
    if extractor is None:
        from finextract.backends.loading import load_run_or_ensemble

        extractor = load_run_or_ensemble(config.run_dir, config.checkpoint, config.runtime, ensemble=config.ensemble)
    task = extractor.task
    max_chars = config.max_chars or task.max_text_chars
    api_key = load_api_key(config)
    metrics = ServeMetrics()
    batcher = MicroBatcher(extractor.predict, config.max_batch, config.max_wait_ms, metrics)
    info = _describe(extractor)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        log.info("serving %s (%s, task %s, %s)", config.run_dir, info.get("backend"), task.name,
                 "API key required" if api_key else "no API key")
        yield
        await batcher.stop()  # uvicorn stopped accepting and waited for in-flight requests first

    app = FastAPI(
        title="finextract",
        version="1",
        description=f"Structured extraction for task '{task.name}': {task.description}",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI / ReDoc pages load scripts from a CDN: off (see module docstring)
        redoc_url=None,
    )
    app.add_middleware(Guard, metrics=metrics, api_key=api_key, metrics_public=config.metrics_public,
                       log_requests=config.access_log, log_texts=config.log_texts)
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.extractor = extractor

    def _error(status: int, message: str, request: Request | None = None) -> JSONResponse:
        if request is not None:
            request.state.error = message[:200]
        return JSONResponse({"detail": message}, status_code=status)

    def _result(pred: Any) -> dict[str, Any]:
        if isinstance(pred, ModelFailure):  # the exception (maybe naming files) is in the server log only
            return {task.record_field: task.empty_output(), "valid": False,
                    "error": "model failure: the model raised on this batch (details in the server log)"}
        if pred is None:
            metrics.invalid_outputs.inc()
            return {task.record_field: task.empty_output(), "valid": False, "error": None}
        norm = task.normalize_output(pred)
        if norm is None:
            metrics.invalid_outputs.inc()
            return {task.record_field: task.empty_output(), "valid": False, "error": "model output has the wrong shape"}
        return {task.record_field: norm, "valid": True, "error": None}

    @app.post(
        "/v1/extract",
        response_model=ExtractResponse,
        summary="Extract structured fields from one or more texts",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": ExtractRequest.model_json_schema()}}}},
        responses={400: {"description": "body is not valid JSON (or a duplicate key, a huge number, too deep)"},
                   413: {"description": "body over max_body_bytes, too many or too long texts"},
                   401: {"description": "missing or wrong API key (when the server has one)"},
                   408: {"description": "the body did not arrive within body_timeout_s"},
                   415: {"description": "content type is not application/json"},
                   422: {"description": "wrong request shape, empty or invalid text"},
                   503: {"description": "server is shutting down"},
                   504: {"description": "request exceeded timeout_s"}},
    )
    async def extract(request: Request) -> Response:
        t0 = time.perf_counter()
        metrics.in_flight.inc()
        try:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return _error(415, f"content type must be application/json, got {ctype[:60] or 'none'!r}", request)
            try:
                body = await read_body(request, config.max_body_bytes, config.body_timeout_s)
                request.state.body_bytes = len(body)
                try:
                    payload = loads_strict(body)
                except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
                    raise BadRequest(400, f"request body is not valid JSON: {str(exc)[:200]}") from None
                texts = parse_texts(payload, config.max_texts, max_chars)
            except BadRequest as exc:
                return _error(exc.status, exc.message, request)
            except ClientDisconnect:
                request.state.disconnected = True
                log.info("client %s went away before sending its whole request", _client(request))
                return Response(status_code=499)
            request.state.n_texts = len(texts)
            if config.log_texts:
                request.state.texts = texts
            try:
                preds = await asyncio.wait_for(batcher.submit(texts), config.timeout_s)
            except (asyncio.TimeoutError, TimeoutError):
                metrics.timeouts.inc()
                return _error(504, f"request took longer than timeout_s={config.timeout_s}", request)
            except RuntimeError as exc:
                return _error(503, str(exc), request)
            metrics.texts.inc(len(texts))
            return JSONResponse({"task": task.name, "results": [_result(p) for p in preds]})
        finally:
            metrics.in_flight.dec()
            metrics.latency.observe(time.perf_counter() - t0)

    @app.get("/health", summary="Liveness and what is being served")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "service": "finextract", "task": task.name, "record_field": task.record_field,
                "task_spec": task.model_dump(mode="json"), "checkpoint": _without_paths(config.checkpoint),
                "model": info, "queue_depth": batcher.depth, "auth": api_key is not None,
                "limits": {"max_texts": config.max_texts, "max_chars": max_chars,
                           "max_body_bytes": config.max_body_bytes}}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prom() -> Response:
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # last resort: keep JSON shape
        log.exception("unhandled error on %s", request.url.path)  # the traceback goes to the log only
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)

    return app


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"
