"""The Flask app factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from flask import Flask

from .config import load_config
from .fhir.validate import warm
from .mapping.engine import Mapper
from .model.changes import consequences
from .store.database import create_engine, migrate
from .store.records import RecordStore


@dataclass
class Bridge:
    """What the views share: config, database engine, mapper and record store."""

    config: dict[str, Any]
    engine: sa.Engine
    mapper: Mapper
    store: RecordStore


def build_bridge(config: dict[str, Any]) -> Bridge:
    engine = create_engine(config["database_url"])
    migrate(engine)
    mapper = Mapper(config["identifier_system_base"], config["local_code_system_base"])
    warm()  # load the FHIR model classes now, not on the first request
    return Bridge(config, engine, mapper, RecordStore(engine, mapper, consequences))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service. ``config`` overrides config files and environment (tests use it)."""
    settings = load_config(config)
    logging.basicConfig(level=settings.get("log_level", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(settings["max_request_bytes"])
    app.json.sort_keys = False
    app.extensions["fhir_bridge"] = build_bridge(settings)

    from .api import health, openapi, records
    from .api.outcome import register_error_handlers

    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(records.bp)
    register_error_handlers(app)
    return app
