"""The Flask app factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from flask import Flask

from .audit.writes import write_listener
from . import logs
from .config import load_config
from .facade.indexing import listener as search_index_listener
from .fhir.validate import warm
from .mapping.engine import Mapper
from .model.changes import consequences
from .store.database import create_engine, migrate
from .store.records import RecordStore
from .sync.provenance import provenance_listener


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
    store = RecordStore(engine, mapper, consequences)
    # Inside every saving transaction: audit (or note for the request's audit) and
    # Provenance for what sync pulled in.
    store.listeners.extend([write_listener(mapper), provenance_listener()])
    store.listeners.append(search_index_listener)  # the search-parameter index, same transaction
    # The subscription event log, numbered in the same transaction as the change.
    from .subscriptions import record_events

    store.listeners.append(record_events)
    return Bridge(config, engine, mapper, store)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service. ``config`` overrides config files and environment (tests use it)."""
    settings = load_config(config)
    logs.configure(settings.get("log_level", "INFO"))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(settings["max_request_bytes"])
    app.json.sort_keys = False
    app.extensions["fhir_bridge"] = build_bridge(settings)

    from .api import screen
    from .api.body import BodyLimit

    # A streamed (chunked) body is held to the same limit as one with a Content-Length.
    app.wsgi_app = BodyLimit(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])
    # First: bytes no record or search can hold (%00) and a streamed body over the limit
    # are refused before anything reads them, authentication included.
    screen.install(app)

    from .auth import install as install_auth

    install_auth(app, settings)  # its before_request hook runs before the views' hooks

    from .api import health, openapi, records
    from .api.outcome import register_error_handlers

    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(records.bp)
    from .audit import http as audit_http
    from .facade import patch as fhir_patch
    from .facade import views as fhir_views
    from .facade import writes as fhir_writes

    app.register_blueprint(fhir_views.bp)
    app.register_blueprint(fhir_writes.bp)  # create, update, delete, bundles, $validate
    app.register_blueprint(fhir_patch.bp)  # PATCH [type]/[id] (JSON Patch)
    from .subscriptions import install as install_subscriptions

    install_subscriptions(app)  # /fhir/Subscription (literal rules win over /fhir/<type>)
    from .questionnaires import install as install_questionnaires

    install_questionnaires(app)  # /fhir/Questionnaire, POST /fhir/QuestionnaireResponse
    from .bulk import install as install_bulk

    install_bulk(app)  # $export, its status and files, and Group
    from .facade import conformance as fhir_conformance

    fhir_conformance.install(app)  # /fhir/StructureDefinition, /CodeSystem, /ValueSet
    audit_http.register(app)
    if (settings.get("console") or {}).get("enabled", True):
        from . import console

        console.install(app)  # /console
    if (settings.get("metrics") or {}).get("enabled", True):
        from . import metrics

        metrics.install(app)  # /metrics
    register_error_handlers(app)
    return app
