"""The ASGI layer in front of every route: authentication, status accounting, access logs.

A plain ASGI middleware rather than FastAPI dependencies, because it must see *every*
response: a 401 before any body is read, a 404 for an unknown path, a 500 from an exception
that escaped a handler (counted here, then re-raised so Starlette's last-resort handler
answers) and a client that went away (counted as 499, logged as one line, no traceback).

* Authentication: ``Authorization: Bearer KEY`` compared with ``hmac.compare_digest`` (time
  independent of where the strings differ). ``/health`` is always open (load balancers probe
  it); ``/metrics`` only when configured public.
* Access log: one JSON object per request on logger ``finextract.access`` -- time, client,
  method, path, status, duration, body bytes, number of texts; the texts only with
  ``log_texts`` (they are customer data).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from finextract.serve.metrics import ServeMetrics

access_log = logging.getLogger("finextract.access")
KNOWN_PATHS = ("/v1/extract", "/health", "/metrics", "/openapi.json")
DISCONNECTED = 499  # nginx's code for "client closed the request"


class Guard:
    def __init__(self, app: Any, metrics: ServeMetrics, api_key: bytes | None, metrics_public: bool,
                 log_requests: bool = True, log_texts: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.api_key = api_key
        self.open_paths = {"/health"} | ({"/metrics"} if metrics_public else set())
        self.log_requests = log_requests
        self.log_texts = log_texts

    def _authorized(self, scope: dict[str, Any]) -> bool:
        assert self.api_key is not None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status: int | None = None

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path = scope.get("path", "")
        try:
            if self.api_key is not None and path not in self.open_paths and not self._authorized(scope):
                await _send_json(send_wrapper, 401, {"detail": "missing or wrong API key: send "
                                                                "'Authorization: Bearer <key>'"},
                                 [(b"www-authenticate", b'Bearer realm="finextract"')])
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception:
            if status is None:
                status = 500
            raise
        finally:
            state = scope.get("state") or {}
            final = status if status is not None else DISCONNECTED
            if state.get("disconnected"):
                final = DISCONNECTED
            self._account(scope, path, final, time.perf_counter() - t0, state)

    def _account(self, scope: dict[str, Any], path: str, status: int, seconds: float, state: dict) -> None:
        route = path if path in KNOWN_PATHS else "other"
        self.metrics.responses.labels(route, str(status)).inc()
        if route == "/v1/extract":
            self.metrics.requests.labels(str(status)).inc()
        if not self.log_requests:
            return
        client = scope.get("client")
        row: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "client": f"{client[0]}:{client[1]}" if client else None,
                               "method": scope.get("method"), "path": path[:200], "status": status,
                               "ms": round(seconds * 1000, 2)}
        for key in ("body_bytes", "n_texts", "error"):
            if key in state:
                row[key] = state[key]
        if self.log_texts and "texts" in state:
            row["texts"] = state["texts"]
        access_log.info(json.dumps(row, ensure_ascii=False))


async def _send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})
