"""Verify JWT bearer tokens against the configured issuers.

Each issuer (config ``auth.issuers``) names its ``issuer`` (the ``iss`` claim), the
``audience`` its tokens must carry (the bridge's base URL) and where its keys are: ``jwks_url``
(fetched, cached for ``auth.jwks_cache_seconds``, fetched again once when a token names an
unknown ``kid``), ``jwks_file``, or ``secret_env`` (an environment variable with an HS256 shared
secret: local development only). Asymmetric issuers accept RS256, RS384, ES256 and ES384;
secret issuers HS256 only; ``none`` never. The algorithm comes from the issuer's keys, not
from the token, so a token cannot choose how it is checked.

An issuer that cannot be used (secret variable unset, JWKS file unreadable) is left out with a
warning: the service still starts, and its tokens are refused.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import jwt
import requests

from ..errors import Unauthorized

log = logging.getLogger(__name__)

ASYMMETRIC_ALGS = ("RS256", "RS384", "ES256", "ES384")
SECRET_ALGS = ("HS256",)
MIN_SECRET_BYTES = 32
#: An unknown kid makes the JWKS be fetched again at most this often (a flood of made-up kids
#: must not become a flood of requests to the issuer).
REFETCH_INTERVAL = 10.0


class KeySource:
    """The keys of one issuer: ``key(kid, alg)`` or Unauthorized."""

    algorithms: tuple[str, ...] = ()

    def key(self, kid: str | None, alg: str) -> Any:
        raise NotImplementedError


class SecretKey(KeySource):
    algorithms = SECRET_ALGS

    def __init__(self, secret: str):
        if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(f"an HS256 secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def key(self, kid: str | None, alg: str) -> Any:
        return self._secret

    def __repr__(self) -> str:
        return "SecretKey(***)"


_CURVES = {"ES256": "P-256", "ES384": "P-384"}


@dataclass(frozen=True)
class _Jwk:
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def suits(self, alg: str) -> bool:
        """RSA keys for RS*, EC keys on the algorithm's curve for ES*; a key that names its
        algorithm only for that one."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg.startswith("RS"):
            return self.kty == "RSA"
        return self.kty == "EC" and self.crv == _CURVES.get(alg)


def _keys_from_jwks(doc: Any) -> dict[str | None, list[_Jwk]]:
    """Usable signing keys of a JWK Set by kid (symmetric keys and other uses are skipped)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("a JWK Set is a JSON object with a keys list")
    keys: dict[str | None, list[_Jwk]] = {}
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue  # never symmetric keys from a JWKS
        if entry.get("alg") is not None and entry["alg"] not in ASYMMETRIC_ALGS:
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        keys.setdefault(entry.get("kid"), []).append(
            _Jwk(entry["kty"], entry.get("crv"), entry.get("alg"), key))
    return keys


class JwksKeys(KeySource):
    """Keys from a JWK Set: a file read once, or a URL fetched and cached."""

    algorithms = ASYMMETRIC_ALGS

    def __init__(self, fetch: Callable[[], Any], ttl: float | None,
                 refetch_interval: float = REFETCH_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, list[_Jwk]] | None = None
        self._fetched_at = 0.0

    def _load(self) -> None:
        self._keys = _keys_from_jwks(self._fetch())
        self._fetched_at = self._clock()

    def key(self, kid: str | None, alg: str) -> Any:
        with self._lock:
            now = self._clock()
            try:
                if self._keys is None or (self._ttl is not None
                                          and now - self._fetched_at > self._ttl):
                    self._load()
                elif kid not in self._keys and self._ttl is not None \
                        and now - self._fetched_at >= self._refetch_interval:
                    self._load()  # the issuer may have rotated its keys
            except (requests.RequestException, ValueError) as exc:
                log.warning("cannot load the issuer's JWKS: %s", type(exc).__name__)
                if self._keys is None:
                    raise Unauthorized("the token issuer's keys are unavailable") from None
            candidates = self._keys.get(kid, []) if kid is not None else \
                [k for keys in self._keys.values() for k in keys]
        for candidate in candidates:
            if candidate.suits(alg):
                return candidate.key
        raise Unauthorized("no key of the issuer verifies this token")


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str
    keys: KeySource


class TokenVerifier:
    """Verifies tokens against a fixed set of issuers; ``verify`` returns the claims."""

    def __init__(self, issuers: list[Issuer], leeway: float = 30,
                 left_out: Mapping[str, str] | None = None):
        self.issuers = {i.issuer: i for i in issuers}
        self.leeway = leeway
        #: configured issuers that could not be used, with why: a token of one is refused
        #: with that reason (not only in the log)
        self.left_out = dict(left_out or {})

    def trust(self, issuer: Issuer) -> None:
        """Accept one more issuer's tokens (the bridge's own token endpoint)."""
        self.issuers[issuer.issuer] = issuer

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a well-formed JWT") from None
        issuer = self.issuers.get(unverified.get("iss")) \
            if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            why = self.left_out.get(unverified.get("iss")) \
                if isinstance(unverified.get("iss"), str) else None
            if why:
                raise Unauthorized(f"the token's issuer is configured but not usable on this "
                                   f"server: {why}")
            raise Unauthorized("the token's issuer is not trusted")
        alg = header.get("alg")
        if alg not in issuer.keys.algorithms:
            raise Unauthorized("the token's signing algorithm is not accepted for its issuer")
        kid = header.get("kid")
        key = issuer.keys.key(kid if isinstance(kid, str) else None, alg)
        try:
            return jwt.decode(token, key, algorithms=[alg], audience=issuer.audience,
                              issuer=issuer.issuer, leeway=self.leeway,
                              options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token is not meant for this server (aud)") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is invalid ({type(exc).__name__})") from None


def _fetch_url(url: str, timeout: float = 5.0) -> Callable[[], Any]:
    def fetch() -> Any:
        response = requests.get(url, timeout=timeout, allow_redirects=False,
                                headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()

    return fetch


def _read_file(path: str) -> Callable[[], Any]:
    def read() -> Any:
        return json.loads(Path(path).read_text(encoding="utf-8"))

    return read


def jwks_keys(entry: Mapping[str, Any], settings: Mapping[str, Any]) -> JwksKeys:
    """The keys an entry's ``jwks`` (a JWK Set inline), ``jwks_file`` (read now: unreadable or
    not a JWKS is a ValueError/OSError) or ``jwks_url`` (fetched when first needed, cached
    ``jwks_cache_seconds``) name; used for issuers and for the token endpoint's clients."""
    if entry.get("jwks_url"):
        return JwksKeys(_fetch_url(entry["jwks_url"]), float(settings.get("jwks_cache_seconds",
                                                                          300)),
                        float(settings.get("jwks_refetch_seconds", REFETCH_INTERVAL)))
    if entry.get("jwks_file"):
        _keys_from_jwks(_read_file(entry["jwks_file"])())
        return JwksKeys(_read_file(entry["jwks_file"]), None)
    doc = entry.get("jwks")
    _keys_from_jwks(doc)
    return JwksKeys(lambda: doc, None)


def issuer_from_config(entry: Mapping[str, Any], settings: Mapping[str, Any],
                       environ: Mapping[str, str]) -> Issuer:
    """One issuer; ValueError when it cannot be used."""
    iss, audience = entry.get("issuer"), entry.get("audience")
    if not isinstance(iss, str) or not iss or not isinstance(audience, str) or not audience:
        raise ValueError("an issuer needs issuer and audience")
    sources = [k for k in ("jwks_url", "jwks_file", "secret_env") if entry.get(k)]
    if len(sources) != 1:
        raise ValueError(f"issuer {iss}: give exactly one of jwks_url, jwks_file, secret_env")
    if entry.get("jwks_url") or entry.get("jwks_file"):
        keys: KeySource = jwks_keys(entry, settings)
    else:
        secret = environ.get(entry["secret_env"])
        if not secret:
            raise ValueError(f"issuer {iss}: environment variable {entry['secret_env']} is "
                             "not set")
        keys = SecretKey(secret)
    return Issuer(iss, audience, keys)


def verifier_from_config(settings: Mapping[str, Any],
                         environ: Mapping[str, str] | None = None) -> TokenVerifier:
    """The verifier of config ``auth``; unusable issuers are left out with a warning."""
    environ = os.environ if environ is None else environ
    issuers, left_out = [], {}
    for entry in settings.get("issuers") or []:
        try:
            issuers.append(issuer_from_config(entry, settings, environ))
        except (ValueError, OSError) as exc:
            log.warning("auth issuer left out: %s", exc)
            if isinstance(entry, Mapping) and isinstance(entry.get("issuer"), str):
                left_out[entry["issuer"]] = str(exc)
    if not issuers:
        log.warning("no usable token issuer: every protected request will be refused (401)")
    return TokenVerifier(issuers, float(settings.get("leeway_seconds", 30)), left_out)
