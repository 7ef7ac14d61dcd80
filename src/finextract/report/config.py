"""The ``report`` section of a sweep YAML: title, recommendation tiers, whether to render.

Lives in ``report/`` (not ``sweep/``) because the report reads it: a report over any runs
folder needs no sweep.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finextract.errors import ConfigError
from finextract.report.tiers import DEFAULT_TIERS, Tier


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = "finextract sweep report"
    tiers: list[Tier] = Field(default_factory=lambda: [t.model_copy() for t in DEFAULT_TIERS])
    render: bool = Field(True, description="write the report to OUTPUT_DIR/report when the sweep ends")


def load_report_config(path: str | Path | None) -> ReportConfig:
    """The ``report`` section of a sweep YAML, or a YAML holding just that section."""
    if path is None:
        return ReportConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read report config: {exc}") from exc
    section = data.get("report", data) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'report' section")
    section = {k: v for k, v in section.items() if k in ReportConfig.model_fields}
    try:
        return ReportConfig.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid report config:\n{exc}") from exc
