"""``endpoint`` backend: an Extractor that calls a served model over HTTP.

Two kinds of server are understood:

* ``finextract`` -- ``finextract serve`` (``POST /v1/extract``; ``GET /health`` describes the task);
* ``mlflow`` -- ``mlflow models serve`` of a ``finextract package`` model (``POST /invocations``).

``kind="auto"`` asks ``/health``: finextract's answers JSON with ``"service": "finextract"``;
anything else is treated as MLflow. An MLflow endpoint does not describe its task, so pass
``task=`` (a Task or task name) -- ``validate-endpoint`` takes it from the reference run.
Transport failures are retried, then give ``None`` (invalid output) for the affected texts
so one bad batch is counted by the scorer instead of aborting a whole evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from finextract.errors import InputError
from finextract.extractor import Extractor, Prediction
from finextract.tasks import Task

log = logging.getLogger("finextract.endpoint")

Kind = Literal["auto", "finextract", "mlflow"]
_SUFFIXES = ("/v1/extract", "/invocations", "/health", "/")


def base_url(url: str) -> str:
    """``http://h:p/v1/extract`` -> ``http://h:p`` (users paste either form)."""
    url = url.strip()
    for suffix in _SUFFIXES:
        if url.endswith(suffix) and len(url) > len("http://") + len(suffix):
            url = url[: -len(suffix)]
    return url.rstrip("/")


def detect_kind(url: str, client: httpx.Client) -> tuple[str, dict[str, Any] | None]:
    """Return ("finextract", health_json) or ("mlflow", None)."""
    try:
        resp = client.get(f"{url}/health")
    except httpx.HTTPError as exc:
        raise InputError(f"{url}: cannot reach the endpoint: {exc}") from exc
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("service") == "finextract":
        return "finextract", data
    if resp.status_code < 500:
        return "mlflow", None
    raise InputError(f"{url}/health answered {resp.status_code}; is the server up?")


class EndpointExtractor(Extractor):
    def __init__(self, url: str, kind: Kind = "auto", task: Task | str | None = None,
                 batch_size: int = 64, timeout_s: float = 60.0, retries: int = 2) -> None:
        self.url = base_url(url)
        self.batch_size = batch_size
        self.retries = retries
        self.client = httpx.Client(timeout=timeout_s)
        health = None
        if kind == "auto":
            kind, health = detect_kind(self.url, self.client)  # type: ignore[assignment]
        elif kind == "finextract":
            health = self.client.get(f"{self.url}/health").json()
        self.kind = kind
        if isinstance(task, str):
            from finextract.tasks import load_task

            task = load_task(task)
        if task is None and health is not None:
            task = Task.model_validate(health["task_spec"])
        if task is None:
            raise InputError(f"{self.url}: an MLflow endpoint does not describe its task; pass task=NAME "
                             "(validate-endpoint takes it from --reference)")
        self.task = task
        self.health = health
        self.failures = 0

    def describe(self) -> dict[str, Any]:
        return {"backend": "endpoint", "kind": self.kind, "url": self.url, "task": self.task.name,
                "served": (self.health or {}).get("model")}

    def _post(self, texts: list[str]) -> list[Any]:
        if self.kind == "finextract":
            resp = self.client.post(f"{self.url}/v1/extract", json={"texts": texts})
            resp.raise_for_status()
            rows = resp.json()["results"]
        else:
            resp = self.client.post(f"{self.url}/invocations",
                                    json={"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}})
            resp.raise_for_status()
            rows = resp.json()["predictions"]
        if len(rows) != len(texts):
            raise InputError(f"endpoint returned {len(rows)} rows for {len(texts)} texts")
        return rows

    def _row_to_prediction(self, row: Any) -> Prediction:
        if not isinstance(row, dict) or not row.get("valid", False) or row.get("error"):
            return None
        value = row.get(self.task.record_field)
        if isinstance(value, str):  # MLflow rows may carry the values as a JSON string
            import json

            try:
                value = json.loads(value)
            except ValueError:
                return None
        return self.task.normalize_output(value)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out: list[Prediction] = []
        for i in range(0, len(texts), self.batch_size):
            chunk = list(texts[i:i + self.batch_size])
            rows = None
            for attempt in range(self.retries + 1):
                try:
                    rows = self._post(chunk)
                    break
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("endpoint %s failed on %d texts (attempt %d): %s", self.url, len(chunk),
                                attempt + 1, exc)
                    time.sleep(0.2 * (attempt + 1))
            if rows is None:
                self.failures += len(chunk)
                out.extend([None] * len(chunk))
            else:
                out.extend(self._row_to_prediction(r) for r in rows)
        return out


def load(source: str, checkpoint: str | None = None, **kwargs: Any) -> EndpointExtractor:
    """``load_extractor("http://...")`` lands here; ``checkpoint`` is meaningless for a URL."""
    return EndpointExtractor(source, **kwargs)
