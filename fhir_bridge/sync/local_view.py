"""What the store holds, as pull needs to see it: a resource's stored row, whether it is kept
as sent (foreign) or waiting in the outbox, a remote resource in local ids, and the record
that owns a resource rebuilt with an edited version of it swapped in."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import MappingError
from ..fhir import jsonio, references
from ..mapping.engine import Mapper
from ..store import tables as t
from . import remote_map


class LocalView:
    def __init__(self, engine: sa.Engine, mapper: Mapper, target_name: str):
        self.engine = engine
        self.mapper = mapper
        self.target_name = target_name

    def local_row(self, rtype: str, local_id: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(t.resources).where(
                t.resources.c.resource_type == rtype, t.resources.c.id == local_id)).first()

    def kept(self, rtype: str, local_id: str) -> bool:
        """Kept as sent: a resource read from the target that the bridge never wrote."""
        fc = t.foreign_content
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                fc.c.resource_type == rtype, fc.c.id == local_id)).first() is not None

    def pending_locally(self, rtype: str, local_id: str) -> bool:
        """Changed here and not yet confirmed by the target (or in conflict)."""
        o = t.outbox
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                o.c.resource_type == rtype, o.c.resource_id == local_id,
                o.c.status.in_(("pending", "conflict")))).first() is not None

    def localize(self, resource: dict, local_id: str) -> dict:
        """A remote resource with local ids: itself and every reference the map knows."""
        out = jsonio.loads(jsonio.dumpb(resource))
        out["id"] = local_id
        refs = {references.split(r) for r in references.references(out) if references.split(r)}
        with self.engine.connect() as conn:
            known = remote_map.by_remote_ids(conn, self.target_name, refs)
        local = {f"{rtype}/{rid}": f"{rtype}/{remote.local_id}"
                 for (rtype, rid), remote in known.items()}
        references.rewrite(out, lambda ref: local.get(ref, ref))
        return out

    def rebuild(self, concept: str, record_id: str, edited_key: tuple[str, str],
                edited: dict) -> dict:
        """The owning record again, from its resources with the edited one swapped in."""
        res = t.resources
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(res).where(res.c.concept == concept,
                                                     res.c.record_id == record_id,
                                                     res.c.deleted.is_(False))).all()
        by_ref = {f"{r.resource_type}/{r.id}": jsonio.loads(r.content) for r in rows}
        by_ref[f"{edited_key[0]}/{edited_key[1]}"] = edited
        main_id = self.mapper.resource_id(concept, record_id)
        main_type = self.mapper.resource_type(concept)
        back = self.mapper.to_internal(by_ref[f"{main_type}/{main_id}"], resolve=by_ref.get)
        lost = [f"{path}: {why}" for path, why in back.unmapped]
        if lost:
            raise MappingError("; ".join(lost), "parse")
        return back.record
