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


def fhir_api_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The /fhir API's own settings, checked (ValueError names the bad key): the public base
    URL, whether to trust a proxy's X-Forwarded-* headers, and the CORS origins."""
    base = config.get("public_base_url") or None  # an empty environment variable: unset
    if base is not None:
        if not isinstance(base, str) or not base.startswith(("http://", "https://")) or any(
                c in base for c in "?# ") or base.rstrip("/").count("/") < 2:
            raise ValueError("public_base_url must be an http(s) URL without query or "
                             "fragment, e.g. https://bridge.example.org/fhir")
    trust = config.get("trust_proxy", False)
    if not isinstance(trust, bool):
        raise ValueError("trust_proxy must be true or false")
    cors = config.get("cors") or {}
    origins = cors.get("allowed_origins") or []
    if not isinstance(origins, list) or not all(
            isinstance(o, str) and (o == "*" or (o.startswith(("http://", "https://"))
                                                 and o.count("/") == 2)) for o in origins):
        raise ValueError("cors.allowed_origins is a list of origins (scheme://host[:port], "
                         "no path) or '*'")
    max_age = cors.get("max_age_seconds", 600)
    if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0:
        raise ValueError("cors.max_age_seconds must be a whole number of seconds")
    return {"public_base_url": base.rstrip("/") if base else None, "trust_proxy": trust,
            "cors_origins": tuple(o.rstrip("/") for o in origins), "cors_max_age": max_age}
