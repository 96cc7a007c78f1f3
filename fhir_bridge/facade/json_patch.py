"""JSON Patch (RFC 6902) over JSON Pointers (RFC 6901), for ``PATCH [type]/[id]``.

``apply`` returns a patched copy and never changes its input: a patch applies whole or not at
all. A patch that is not one (not an array of operation objects, an unknown ``op``, a member
missing, a pointer that is not a pointer) is a BadRequest (400); a well-formed operation that
cannot be applied to this document (a path that is not there, an index out of range, a
failed ``test``) is InvalidInput (422). Each issue names the operation by its index:
``patch[2].path``."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import BadRequest, InvalidInput, Issue, PayloadTooLarge
from ..fhir import jsonio

OPS = ("add", "remove", "replace", "move", "copy", "test")
#: What each op needs besides ``op`` and ``path``.
MEMBERS = {"add": ("value",), "replace": ("value",), "test": ("value",), "move": ("from",),
           "copy": ("from",), "remove": ()}
MAX_OPERATIONS = 1000
#: Deepest value an operation may carry, and longest array index (no FHIR resource nests
#: anywhere near this; beyond it Python's recursion and int() limits would be a 500).
MAX_DEPTH = 64
MAX_INDEX_DIGITS = 9


class _Unapplicable(Exception):
    """An operation that cannot be applied: (member, reason)."""

    def __init__(self, member: str, reason: str):
        super().__init__(reason)
        self.member = member
        self.reason = reason


def parse_pointer(text: object, where: str) -> list[str]:
    """RFC 6901: "" is the whole document, else "/" then tokens with ~0 for ~ and ~1 for /."""
    if not isinstance(text, str):
        raise BadRequest("the patch is not a JSON Patch", [Issue(where, "must be a string")])
    if text == "":
        return []
    if not text.startswith("/"):
        raise BadRequest("the patch is not a JSON Patch",
                         [Issue(where, f"{text!r} is not a JSON Pointer: it must start with /")])
    tokens = []
    for raw in text[1:].split("/"):
        if raw.replace("~0", "").replace("~1", "").count("~"):
            raise BadRequest("the patch is not a JSON Patch",
                             [Issue(where, f"{text!r}: ~ must be followed by 0 or 1")])
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _index(token: str, size: int, member: str, append: bool) -> int:
    """An array index: digits without a leading zero, < size (<= size and "-" to add)."""
    if append and token == "-":
        return size
    if not token.isascii() or not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _Unapplicable(member, f"{token!r} is not an array index")
    if len(token) > MAX_INDEX_DIGITS:
        raise _Unapplicable(member, f"index {token[:MAX_INDEX_DIGITS]}... is out of range "
                                    f"(the array has {size})")
    index = int(token)
    if index > size or (index == size and not append):
        raise _Unapplicable(member, f"index {index} is out of range (the array has {size})")
    return index


def _parent(doc: Any, tokens: list[str], member: str) -> Any:
    """The container the last token is in (which must exist)."""
    node = doc
    for depth, token in enumerate(tokens[:-1]):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), member, append=False)]
        else:
            raise _Unapplicable(member, f"/{'/'.join(tokens[:depth + 1])} does not exist")
    return node


def _get(doc: Any, tokens: list[str], member: str) -> Any:
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, member), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _Unapplicable(member, f"/{'/'.join(tokens)} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), member, append=False)]
    raise _Unapplicable(member, f"/{'/'.join(tokens)} does not exist")


def _add(doc: Any, tokens: list[str], value: Any, member: str = "path") -> Any:
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, member), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), member, append=True), value)
    else:
        raise _Unapplicable(member, f"/{'/'.join(tokens[:-1])} is neither object nor array")
    return doc


def _remove(doc: Any, tokens: list[str], member: str = "path") -> tuple[Any, Any]:
    """(the document, the value removed)."""
    if not tokens:
        raise _Unapplicable(member, "the whole document cannot be removed")
    value = _get(doc, tokens, member)
    parent, last = _parent(doc, tokens, member), tokens[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc, value


def equal(a: Any, b: Any) -> bool:
    """RFC 6902 4.6: same JSON type and value; numbers by value; true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _operation(op: object, index: int) -> tuple[str, list[str], dict]:
    """(op name, path tokens, its members: ``from`` as tokens) of a well-formed operation,
    else 400."""
    where = f"patch[{index}]"
    if not isinstance(op, dict):
        raise BadRequest("the patch is not a JSON Patch", [Issue(where, "must be an object")])
    name = op.get("op")
    if name not in OPS:
        said = f"{name!r}" if isinstance(name, str) and len(name) <= 20 else "it"
        raise BadRequest("the patch is not a JSON Patch", [Issue(
            f"{where}.op", f"{said} is not an operation: use one of {', '.join(OPS)}"
            if "op" in op else "is missing")])
    if "path" not in op:
        raise BadRequest("the patch is not a JSON Patch", [Issue(f"{where}.path", "is missing")])
    tokens = parse_pointer(op["path"], f"{where}.path")
    for member in MEMBERS[name]:
        if member not in op:
            raise BadRequest("the patch is not a JSON Patch",
                             [Issue(f"{where}.{member}", f"is missing (op {name})")])
    if "from" in MEMBERS[name]:
        op = {**op, "from": parse_pointer(op["from"], f"{where}.from")}
    if "value" in MEMBERS[name] and _deeper_than(op["value"], MAX_DEPTH):
        raise BadRequest("the patch is not a JSON Patch",
                         [Issue(f"{where}.value", f"nests deeper than {MAX_DEPTH} levels")])
    return name, tokens, op


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a JSON value nests more than ``limit`` levels (walked without recursion)."""
    level = [value]
    for _ in range(limit + 1):
        level = [v for node in level if isinstance(node, (dict, list))
                 for v in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return False
    return True


def apply(document: Any, patch: object, max_bytes: int | None = None) -> Any:
    """The document with every operation of ``patch`` applied, in order (a new object).
    ``max_bytes``: a patched document larger than this (``copy`` can double one) is refused
    with 413, as a body that size would be."""
    if not isinstance(patch, list):
        raise BadRequest("the patch is not a JSON Patch",
                         [Issue("patch", "must be a JSON array of operations")])
    if len(patch) > MAX_OPERATIONS:
        raise BadRequest("the patch is too long",
                         [Issue("patch", f"has {len(patch)} operations; at most "
                                         f"{MAX_OPERATIONS}")])
    operations = [_operation(op, index) for index, op in enumerate(patch)]
    doc = copy.deepcopy(document)
    for index, (name, tokens, op) in enumerate(operations):
        try:
            doc = _apply_one(doc, name, tokens, op)
        except _Unapplicable as exc:
            raise InvalidInput(f"operation {index} of the patch ({name}) cannot be applied",
                               [Issue(f"patch[{index}].{exc.member}", exc.reason)]) from None
        except RecursionError:  # values nested into values, op after op
            raise BadRequest("the patched resource nests too deeply", [Issue(
                f"patch[{index}]", "nests it deeper than this server reads")]) from None
        if name == "copy" and max_bytes is not None and len(jsonio.dumps(doc)) > max_bytes:
            raise PayloadTooLarge("the patched resource is too large",
                                  [Issue(f"patch[{index}]", f"makes it larger than {max_bytes}"
                                                            " bytes")])
    return doc


def _apply_one(doc: Any, name: str, tokens: list[str], op: dict) -> Any:
    if name == "add":
        return _add(doc, tokens, copy.deepcopy(op["value"]))
    if name == "remove":
        return _remove(doc, tokens)[0]
    if name == "replace":
        _get(doc, tokens, "path")  # must exist
        if not tokens:
            return copy.deepcopy(op["value"])
        parent = _parent(doc, tokens, "path")
        parent[tokens[-1] if isinstance(parent, dict) else int(tokens[-1])] = \
            copy.deepcopy(op["value"])
        return doc
    if name == "test":
        if not equal(_get(doc, tokens, "path"), op["value"]):
            raise _Unapplicable("value", f"the value at {op['path'] or '(the document)'} is "
                                         "not the one the test expects")
        return doc
    source = op["from"]
    if name == "move":
        if source == tokens:
            _get(doc, source, "from")
            return doc
        if tokens[:len(source)] == source:
            raise _Unapplicable("from", "a value cannot be moved into one of its children")
        doc, value = _remove(doc, source, "from")
        return _add(doc, tokens, value)
    return _add(doc, tokens, copy.deepcopy(_get(doc, source, "from")))
