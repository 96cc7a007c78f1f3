"""The bridge's own authorization server for SMART Backend Services: the ``client_credentials``
grant with a signed JWT client assertion (``private_key_jwt``, RS384 or ES384).

Registered clients are in config ``auth.token_server.clients``: ``client_id``, the ``scope``
it may be granted (space-separated SMART ``system/`` scopes) and its public keys (``jwks``
inline, ``jwks_file`` or ``jwks_url``, read like an issuer's keys, ``tokens.JwksKeys``).

An assertion is accepted when it is signed by a key of the client (alg RS384 or ES384), has
``iss`` = ``sub`` = the client id, ``aud`` = this token endpoint's URL, an ``exp`` at most
``assertion_max_seconds`` (300) ahead and a ``jti`` not used before: each accepted jti is stored
(table ``token_assertions``, primary key client id + jti) until its exp, so of two requests
with one assertion exactly one gets a token. The token it issues is signed with the bridge's
key (``signing``); the bridge's verifier trusts it as one more issuer.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import jwt
import sqlalchemy as sa

from ..errors import BridgeError, Unauthorized
from ..store import tables as t
from ..store.database import is_unique_violation
from .scopes import Scope, ScopeError, parse_scope
from .signing import SigningKey
from .tokens import Issuer, KeySource, jwks_keys

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_JTI = 200


class TokenRequestError(BridgeError):
    """An RFC 6749 error answer of the token endpoint: ``{"error": ..., "error_description"}``
    with 400 (401 for invalid_client)."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error
        self.status = 401 if error == "invalid_client" else 400


@dataclass(frozen=True)
class Client:
    client_id: str
    scopes: tuple[Scope, ...]
    keys: KeySource


class StaticKeys(KeySource):
    """The bridge's own public key, for verifying the tokens it issued."""

    def __init__(self, key: SigningKey):
        self.algorithms = (key.alg,)
        self._key = key

    def key(self, kid: str | None, alg: str) -> Any:
        if kid not in (None, self._key.kid):
            raise Unauthorized("no key of the issuer verifies this token")
        return self._key.public_key


def _client(entry: Mapping[str, Any], settings: Mapping[str, Any]) -> Client:
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ValueError("a registered client needs a client_id")
    scopes = []
    for text in str(entry.get("scope") or "").split():
        scope = parse_scope(text)
        if scope is None or scope.context != "system":
            raise ValueError(f"client {client_id}: {text!r} is not a system/ scope")
        scopes.append(scope)
    sources = [k for k in ("jwks", "jwks_file", "jwks_url") if entry.get(k)]
    if len(sources) != 1:
        raise ValueError(f"client {client_id}: give exactly one of jwks, jwks_file, jwks_url")
    return Client(client_id, tuple(scopes), jwks_keys(entry, settings))


def _covered(scope: Scope, granted: tuple[Scope, ...]) -> bool:
    return any(g.context == scope.context and g.resource_type in ("*", scope.resource_type)
               and scope.interactions <= g.interactions for g in granted)


class TokenServer:
    def __init__(self, issuer: str, audience: str, key: SigningKey, clients: list[Client],
                 ttl_seconds: int = 300, assertion_max_seconds: int = 300,
                 leeway: float = 30):
        self.issuer, self.audience, self.key = issuer, audience, key
        self.clients = {c.client_id: c for c in clients}
        self.ttl_seconds, self.assertion_max_seconds = ttl_seconds, assertion_max_seconds
        self.leeway = leeway

    def trusted_issuer(self) -> Issuer:
        return Issuer(self.issuer, self.audience, StaticKeys(self.key))

    def issue(self, engine: sa.Engine, form: Mapping[str, str], token_url: str,
              now: float | None = None) -> dict[str, Any]:
        """The token answer for a token request (TokenRequestError otherwise)."""
        if form.get("grant_type") != "client_credentials":
            raise TokenRequestError("unsupported_grant_type",
                                    "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenRequestError("invalid_client",
                                    f"client_assertion_type must be {ASSERTION_TYPE}")
        if not form.get("client_assertion"):
            raise TokenRequestError("invalid_client", "client_assertion is missing")
        now = time.time() if now is None else now
        client, claims = self._verify(form["client_assertion"], token_url, now)
        scope = self._grant(client, form.get("scope"))
        self._remember(engine, client.client_id, claims["jti"], claims["exp"])
        issued = int(now)
        token = self.key.sign({"iss": self.issuer, "aud": self.audience,
                               "sub": client.client_id, "client_id": client.client_id,
                               "scope": scope, "iat": issued, "nbf": issued,
                               "exp": issued + self.ttl_seconds, "jti": uuid.uuid4().hex})
        log.info("token issued to client %s", client.client_id)
        return {"access_token": token, "token_type": "bearer",
                "expires_in": self.ttl_seconds, "scope": scope}

    def _verify(self, assertion: str, token_url: str, now: float) -> tuple[Client, dict]:
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRequestError("invalid_client",
                                    "client_assertion is not a well-formed JWT") from None
        client = self.clients.get(unverified.get("iss")) \
            if isinstance(unverified.get("iss"), str) else None
        if client is None:
            raise TokenRequestError("invalid_client", "the client is not registered here")
        alg = header.get("alg")
        if alg not in ASSERTION_ALGS:
            raise TokenRequestError("invalid_client", "the assertion must be signed with "
                                    "RS384 or ES384")
        kid = header.get("kid")
        try:
            key = client.keys.key(kid if isinstance(kid, str) else None, alg)
            claims = jwt.decode(assertion, key, algorithms=[alg], audience=token_url,
                                issuer=client.client_id, leeway=self.leeway,
                                options={"require": ["exp", "iss", "sub", "aud", "jti"],
                                         "verify_iat": False})
        except Unauthorized as exc:
            raise TokenRequestError("invalid_client", exc.message) from None
        except jwt.InvalidAudienceError:
            raise TokenRequestError("invalid_client",
                                    f"the assertion's aud must be {token_url}") from None
        except jwt.ExpiredSignatureError:
            raise TokenRequestError("invalid_client", "the assertion has expired") from None
        except jwt.PyJWTError as exc:
            raise TokenRequestError("invalid_client",
                                    f"the assertion is invalid ({type(exc).__name__})") from None
        if claims.get("sub") != client.client_id:
            raise TokenRequestError("invalid_client", "the assertion's sub must be the client id")
        if not isinstance(claims["exp"], (int, float)) or \
                claims["exp"] > now + self.assertion_max_seconds + self.leeway:
            raise TokenRequestError("invalid_client", "the assertion's exp may be at most "
                                    f"{self.assertion_max_seconds} seconds ahead")
        if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= MAX_JTI:
            raise TokenRequestError("invalid_client",
                                    f"the assertion's jti must be a string of 1 to {MAX_JTI} "
                                    "characters")
        return client, claims

    def _grant(self, client: Client, requested: str | None) -> str:
        """The requested scopes, each within the client's registration (invalid_scope)."""
        if not requested or not requested.split():
            raise TokenRequestError("invalid_scope", "scope is required")
        granted = []
        for text in requested.split():
            try:
                scope = parse_scope(text)
            except ScopeError as exc:
                raise TokenRequestError("invalid_scope", str(exc)) from None
            if scope is None:
                continue  # not a clinical scope: nothing to grant
            if scope.context != "system" or not _covered(scope, client.scopes):
                raise TokenRequestError("invalid_scope",
                                        f"{text} is not registered for this client")
            granted.append(text)
        if not granted:
            raise TokenRequestError("invalid_scope", "no system/ scope was requested")
        return " ".join(dict.fromkeys(granted))

    @staticmethod
    def _remember(engine: sa.Engine, client_id: str, jti: str, exp: float) -> None:
        """Store the jti until its exp; a jti stored already (even by a concurrent request
        a moment ago) is a replay."""
        expires = dt.datetime.fromtimestamp(exp, dt.timezone.utc)
        tbl = t.token_assertions
        try:
            with engine.begin() as conn:
                conn.execute(tbl.delete().where(tbl.c.expires_at < dt.datetime.now(
                    dt.timezone.utc) - dt.timedelta(minutes=5)))
                conn.execute(tbl.insert().values(client_id=client_id, jti=jti,
                                                 expires_at=expires))
        except sa.exc.IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            raise TokenRequestError("invalid_client",
                                    "this assertion (its jti) was used before") from None


def root_url(fhir_base: str) -> str:
    """The service root a FHIR base URL hangs from (``.../fhir`` -> ``...``)."""
    return fhir_base[:-len("/fhir")] if fhir_base.endswith("/fhir") else fhir_base


def server_from_config(config: Mapping[str, Any], key: SigningKey) -> TokenServer:
    """The token server of config ``auth.token_server``; clients that cannot be used are left
    out with a warning."""
    from ..facade.urls import fhir_base

    auth = config.get("auth") or {}
    settings = auth.get("token_server") or {}
    base = fhir_base(config)  # outside a request: public_base_url or the configured server
    clients = []
    for entry in settings.get("clients") or []:
        try:
            clients.append(_client(entry, auth))
        except (ValueError, OSError, ScopeError) as exc:
            log.warning("token endpoint client left out: %s", exc)
    return TokenServer(settings.get("issuer") or f"{root_url(base)}/auth",
                       settings.get("audience") or base, key, clients,
                       int(settings.get("token_ttl_seconds", 300)),
                       int(settings.get("assertion_max_seconds", 300)),
                       float(auth.get("leeway_seconds", 30)))
