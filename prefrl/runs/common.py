"""What every run directory shares: creating one safely, reading its JSON files, strict-JSON metrics."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any


def prepare_run_dir(out: Path, overwrite: bool, resumable: bool = False) -> Path:
    """Create `out`, refusing to start over an earlier run there unless `overwrite` (then it is deleted)."""
    existing = out / "config.json"
    if existing.exists():
        if not overwrite:
            hint = f"continue it with --resume {out}, or " if resumable else ""
            raise ValueError(f"{out} already holds a prefrl run: {hint}pass --overwrite to delete it and start again")
        try:
            json.loads(existing.read_text())  # only ever delete what is recognizably a prefrl run
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{existing} is corrupt, so {out} is not deleted: {exc}") from exc
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of a run directory ({} if absent), with a clear error if corrupt."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is corrupt: {exc}") from exc


def json_safe(obj: Any) -> Any:
    """NaN -> None so metrics.json stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj
