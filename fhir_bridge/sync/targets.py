"""Sync target profiles (config ``sync.targets``) and the tag on everything the bridge writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, Issue

BRIDGE_TAG = {"system": "urn:fhir-bridge:tag", "code": "fhir-bridge",
              "display": "Written by fhir-bridge"}


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    auth: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    batch_size: int = 100
    max_attempts: int = 8
    lease_seconds: float = 120
    retry_base_seconds: float = 2.0
    pull_page_size: int = 100
    in_flight: int = 2  # push: transaction bundles sent at once by one worker


def target_from_config(config: dict[str, Any], name: str | None = None) -> Target:
    sync = config["sync"]
    name = name or sync["target"]
    profile = sync["targets"].get(name)
    if profile is None:
        raise BadRequest(f"no sync target {name!r}",
                         [Issue("target", f"known: {', '.join(sorted(sync['targets']))}")])
    return Target(name=name, base_url=profile["base_url"].rstrip("/"),
                  auth=profile.get("auth") or {"type": "none"},
                  batch_size=int(profile.get("batch_size", sync["batch_size"])),
                  max_attempts=int(profile.get("max_attempts", sync["max_attempts"])),
                  lease_seconds=float(profile.get("lease_seconds", sync["lease_seconds"])),
                  retry_base_seconds=float(profile.get("retry_base_seconds",
                                                       sync["retry_base_seconds"])),
                  pull_page_size=int(sync["pull_page_size"]),
                  in_flight=max(1, int(profile.get("in_flight", sync.get("in_flight", 2)))))
