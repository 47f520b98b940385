"""YAML specs shipped inside the package (recipes, mixes), loaded by name or from a path."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml


def packaged_names(folder: str) -> list[str]:
    """Names of the YAML files in the package folder `folder` (`recipes`, `mixes`)."""
    return sorted(p.name[: -len(".yaml")] for p in (files("mmcurate") / folder).iterdir() if p.name.endswith(".yaml"))


def load_spec(source: str | Path, folder: str, what: str, error: type[Exception]) -> Any:
    """The parsed YAML of the file at `source`, or of the packaged `folder/{source}.yaml`; `error` (naming the
    packaged ones) when neither exists or the text is not YAML."""
    path = Path(source)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif str(source) in packaged_names(folder):
        text = (files("mmcurate") / folder / f"{source}.yaml").read_text(encoding="utf-8")
    else:
        raise error(f"no {what} file {str(source)!r} and no packaged {what} of that name; "
                    f"packaged: {packaged_names(folder)}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{what} {str(source)!r} is not valid YAML: {e}") from e
