"""Read and write nested dict/list documents by dotted paths such as ``a.b[0].c``.

A path is a list of steps: a key (str) or a list index (int). Writing creates the dicts and
lists it needs, so a mapping can say where a value goes without building the parents first.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@lru_cache(maxsize=None)
def parse(path: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    pos = 0
    for match in _STEP.finditer(path):
        key, index = match.groups()
        steps.append(int(index) if index is not None else key)
        pos = match.end()
        if pos < len(path) and path[pos] == ".":
            pos += 1
    if not steps:
        raise ValueError(f"empty path {path!r}")
    return tuple(steps)


def get(doc: Any, path: str) -> Any:
    """The value at path, or None where any step is missing."""
    node = doc
    for step in parse(path):
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return None
            node = node[step]
        else:
            if not isinstance(node, dict):
                return None
            node = node.get(step)
            if node is None:
                return None
    return node


def put(doc: dict, path: str, value: Any) -> None:
    """Set value at path, creating parents. Lists are padded with dicts up to the index."""
    steps = parse(path)
    node: Any = doc
    for step, nxt in zip(steps, steps[1:]):
        child_default: Any = [] if isinstance(nxt, int) else {}
        if isinstance(step, int):
            while len(node) <= step:
                node.append(type(child_default)())
            if node[step] is None:
                node[step] = child_default
            node = node[step]
        else:
            if node.get(step) is None:
                node[step] = child_default
            node = node[step]
    last = steps[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
        node[last] = value
    else:
        node[last] = value
