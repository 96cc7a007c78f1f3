"""Mapping throughput: internal records -> FHIR resources, validated and serialized.

Two paths over the same fixtures, in one process, one core:
- bridge: the mapping engine builds plain dicts, each resource is validated once with its
  fhir.resources R4B model (model_validate) and serialized with orjson;
- naive:  the same content built the way fhir.resources is often used, as a model whose
  attributes are assigned one by one (each assignment revalidates, validate_assignment=True),
  then serialized with model_dump_json.
Both validate fully; the figures are medians of several runs (resources per second per core).

    python bench/map_bench.py [--runs 7] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.fhir import jsonio
from fhir_bridge.fhir.validate import model_class, validate_resource, warm
from fhir_bridge.mapping.document import load_document
from fhir_bridge.mapping.engine import Mapper


def load_fixtures() -> list:
    pairs = []
    for path in sorted((PROJECT_ROOT / "fixtures" / "internal").glob("*.json")):
        pairs.extend(load_document(jsonio.loads(Path(path).read_bytes())))
    return pairs


def bridge_path(mapper: Mapper, pairs: list) -> int:
    count = 0
    for concept, record in pairs:
        for resource in mapper.to_fhir(concept.name, record):
            validate_resource(resource)
            jsonio.dumpb(resource)
            count += 1
    return count


def _required(cls) -> list[str]:
    """Fields a model cannot be created without: required elements and required choices."""
    names = [name for name, field in cls.model_fields.items()
             if field.is_required() or (field.json_schema_extra or {}).get("element_required")]
    choices = [name for name, field in cls.model_fields.items()
               if (field.json_schema_extra or {}).get("one_of_many_required")]
    return names + choices


def naive_path(mapper: Mapper, pairs: list) -> int:
    count = 0
    for concept, record in pairs:
        for resource in mapper.to_fhir(concept.name, record):
            cls = model_class(resource["resourceType"])
            required = {k: resource[k] for k in _required(cls) if k in resource}
            obj = cls(**required)
            for key, value in resource.items():
                if key != "resourceType" and key not in required:
                    setattr(obj, key, value)
            obj.model_dump_json()
            count += 1
    return count


def measure(fn, mapper, pairs, runs: int, repeat: int) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        count = sum(fn(mapper, pairs) for _ in range(repeat))
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    warm()
    mapper = Mapper()
    pairs = load_fixtures()
    per_pass = bridge_path(mapper, pairs)
    naive_path(mapper, pairs)  # warm both paths
    bridge = measure(bridge_path, mapper, pairs, args.runs, args.repeat)
    naive = measure(naive_path, mapper, pairs, args.runs, args.repeat)
    print(f"fixtures: {len(pairs)} records -> {per_pass} resources per pass; "
          f"median of {args.runs} runs x {args.repeat} passes, one core")
    print(f"bridge (dicts + one model_validate + orjson): {bridge:8.0f} resources/s")
    print(f"naive  (attribute by attribute + model_dump_json): {naive:8.0f} resources/s")
    print(f"ratio bridge/naive: {bridge / naive:.2f}x  (targets: >= 3x and >= 3000/s)")


if __name__ == "__main__":
    main()
