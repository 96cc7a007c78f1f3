"""The one config loader: `config/default.yaml`, then an optional file, then the environment."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import PROJECT_ROOT

CONFIG_DIR = PROJECT_ROOT / "config"
ENV_PREFIX = "FHIR_BRIDGE_"


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping")
    return data


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """FHIR_BRIDGE_SYNC__BATCH_SIZE=50 -> {"sync": {"batch_size": 50}} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        keys = name[len(ENV_PREFIX):].lower().split("__")
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        try:
            node[keys[-1]] = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            node[keys[-1]] = raw
    return out


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Defaults < FHIR_BRIDGE_CONFIG file < environment < explicit overrides (tests, factory)."""
    environ = os.environ if environ is None else environ
    config = _read_yaml(CONFIG_DIR / "default.yaml")
    extra = environ.get(ENV_PREFIX + "CONFIG")
    if extra:
        config = _merge(config, _read_yaml(Path(extra)))
    config = _merge(config, _from_env(environ))
    if overrides:
        config = _merge(config, overrides)
    return config
