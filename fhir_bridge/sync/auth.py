"""How the FHIR client proves who it is: no auth, a static bearer token, HTTP Basic, or SMART
Backend Services (OAuth 2 client_credentials with a signed JWT assertion).

Every auth has ``headers()`` (the headers to add to the next request) and ``invalidate()`` (the
server answered 401: forget any cached credential). ``refreshable`` says whether invalidating can
yield a different credential; the client retries a 401 once only when it can.

Secrets never come from config files: ``auth_from_config`` reads them from the environment variable
the config names, and no auth object shows its secret in ``repr``.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import RemoteGarbage, RemoteRejected, RemoteUnavailable
from ..fhir import jsonio

log = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: SMART Backend Services: the assertion may live at most five minutes.
ASSERTION_LIFETIME = 300
#: Token lifetime assumed when the token response has no ``expires_in``.
DEFAULT_EXPIRES_IN = 300.0
#: Refresh this long before the token expires (at most a tenth of its lifetime).
REFRESH_MARGIN = 30.0
SUPPORTED_ALGS = ("RS384", "ES384")


class Auth:
    """Base of the auth strategies: no credential, nothing to refresh."""

    refreshable = False

    def headers(self) -> dict[str, str]:
        """Headers to add to the next request."""
        return {}

    def invalidate(self) -> None:
        """The server refused the credential (401): drop whatever is cached."""

    def close(self) -> None:
        """Release connections this auth owns (only the SMART token client has any)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoAuth(Auth):
    """An open server (the HAPI test server, a sandbox)."""


class BearerToken(Auth):
    """A static, pre-issued access token."""

    def __init__(self, token: str):
        _check_header_value("token", token)
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return "BearerToken(token=***)"


class BasicAuth(Auth):
    """HTTP Basic (RFC 7617), for servers behind a simple gateway."""

    def __init__(self, user: str, password: str):
        if ":" in user:
            raise ValueError("a Basic auth user name cannot contain ':'")
        _check_header_value("user", user)
        _check_header_value("password", password)
        self._user = user
        pair = f"{user}:{password}".encode("utf-8")
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    def __repr__(self) -> str:
        return f"BasicAuth(user={self._user!r}, password=***)"


class SmartBackendAuth(Auth):
    """SMART Backend Services: trade a signed JWT for a short-lived access token, and cache it.

    The token is reused until shortly before it expires and fetched again after ``invalidate()``.
    Token endpoint failures raise the remote errors: 429/5xx and unreachable ->
    RemoteUnavailable (the FHIR client retries those), other 4xx -> RemoteRejected (bad client
    id, key or scope: retrying will not help), a 2xx without a token -> RemoteGarbage.
    """

    refreshable = True

    def __init__(self, token_url: str, client_id: str, private_key_pem: str | bytes,
                 alg: str = "RS384", kid: str | None = None, scope: str = "system/*.rs",
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time,
                 timeout: float | tuple[float, float] = (5, 30)):
        if urlsplit(token_url).scheme not in ("http", "https"):
            raise ValueError(f"token_url must be an http(s) URL, not {token_url!r}")
        if not client_id:
            raise ValueError("client_id is required")
        self.token_url = token_url
        self.client_id = client_id
        self.alg = alg
        self.kid = kid
        self.scope = scope
        self._key = load_signing_key(private_key_pem, alg)
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def headers(self) -> dict[str, str]:
        """The cached token, or a fresh one when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._token, self._refresh_at = self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def assertion(self) -> str:
        """A new signed client assertion: iss = sub = client_id, aud = token URL, 5 min max."""
        now = int(self._clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                  "iat": now, "exp": now + ASSERTION_LIFETIME, "jti": str(uuid.uuid4())}
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    def _fetch_token(self) -> tuple[str, float]:
        """POST the client_credentials grant; return the token and when to refresh it."""
        started = self._clock()
        form = {"grant_type": "client_credentials", "scope": self.scope,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.assertion()}
        answer = self._post(form)
        token, expires_in = _token_from(answer, self._where)
        log.debug("token for %s from %s, expires in %.0f s", self.client_id, self._where,
                  expires_in)
        return token, started + expires_in - min(REFRESH_MARGIN, expires_in / 10)

    def _post(self, form: dict[str, str]) -> requests.Response:
        try:
            answer = self._session.post(self.token_url, data=form, timeout=self._timeout,
                                        headers={"Accept": "application/json"},
                                        allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise RemoteUnavailable(f"token endpoint {self._where}: {type(exc).__name__}") \
                from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise RemoteUnavailable(f"token endpoint {self._where} answered "
                                    f"{answer.status_code}", http_status=answer.status_code,
                                    retry_after=_seconds(answer.headers.get("Retry-After")))
        if answer.status_code >= 300:
            raise RemoteRejected(f"token endpoint {self._where} refused the client: "
                                 f"{_oauth_error(answer)}", http_status=answer.status_code)
        return answer

    @property
    def _where(self) -> str:
        """The token endpoint without its query string, for messages and logs."""
        parts = urlsplit(self.token_url)
        return f"{parts.netloc}{parts.path}"

    def __repr__(self) -> str:
        return (f"SmartBackendAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
                f"alg={self.alg!r}, kid={self.kid!r}, scope={self.scope!r})")


def load_signing_key(pem: str | bytes, alg: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM private key and check that it suits ``alg``.

    RS384 needs an RSA key of at least 2048 bits; ES384 an EC key on P-384. Messages never
    include the key itself.
    """
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"alg must be one of {', '.join(SUPPORTED_ALGS)}, not {alg!r}")
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if isinstance(exc, TypeError) else "it is not a PEM key"
        raise ValueError(f"cannot load the private key: {reason}") from None
    if alg == "RS384":
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise ValueError("RS384 needs an RSA private key of at least 2048 bits")
    elif not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
        raise ValueError("ES384 needs an EC private key on curve P-384 (secp384r1)")
    return key


def auth_from_config(config: Mapping[str, Any] | None,
                     environ: Mapping[str, str] | None = None) -> Auth:
    """Build an auth from a target's ``auth`` config; secrets come from the environment.

    ``{"type": "none"}``; ``{"type": "bearer", "token_env": "VAR"}``;
    ``{"type": "basic", "user": "u", "password_env": "VAR"}``;
    ``{"type": "smart-backend", "token_url": ..., "client_id": ..., "private_key_env": "VAR",
    "alg": "RS384", "kid": ..., "scope": ...}``. Unknown keys and inline secrets are errors, so
    a typo or a password pasted into a file fails loudly.
    """
    config = dict({"type": "none"} if config is None else config)
    environ = os.environ if environ is None else environ
    kind = config.pop("type", None)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ValueError(f"auth.type must be one of {', '.join(_BUILDERS)}, not {kind!r}")
    inline = sorted(set(config) & _INLINE_SECRETS)
    if inline:
        raise ValueError(f"auth.{inline[0]} must not be in a config file: put the secret in an "
                         f"environment variable and name it in auth.{inline[0]}_env")
    allowed_keys, build = builder
    unknown = sorted(set(config) - allowed_keys)
    if unknown:
        raise ValueError(f"unknown key auth.{unknown[0]} for auth type {kind!r} "
                         f"(allowed: {', '.join(sorted(allowed_keys)) or 'none'})")
    return build(config, environ)


def _none(config: Mapping[str, Any], environ: Mapping[str, str]) -> Auth:
    return NoAuth()


def _bearer(config: Mapping[str, Any], environ: Mapping[str, str]) -> Auth:
    return BearerToken(_secret(config, "token_env", environ))


def _basic(config: Mapping[str, Any], environ: Mapping[str, str]) -> Auth:
    return BasicAuth(_required(config, "user"), _secret(config, "password_env", environ))


def _smart(config: Mapping[str, Any], environ: Mapping[str, str]) -> Auth:
    return SmartBackendAuth(
        token_url=_required(config, "token_url"), client_id=_required(config, "client_id"),
        private_key_pem=_secret(config, "private_key_env", environ),
        alg=config.get("alg", "RS384"), kid=config.get("kid"),
        scope=config.get("scope", "system/*.rs"))


_BUILDERS: dict[str, tuple[frozenset[str], Callable[..., Auth]]] = {
    "none": (frozenset(), _none),
    "bearer": (frozenset({"token_env"}), _bearer),
    "basic": (frozenset({"user", "password_env"}), _basic),
    "smart-backend": (frozenset({"token_url", "client_id", "private_key_env", "alg", "kid",
                                 "scope"}), _smart),
}
_INLINE_SECRETS = frozenset({"token", "password", "private_key", "client_secret"})


def _required(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"auth.{key} is required")
    return value


def _secret(config: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> str:
    """The value of the environment variable that ``config[key]`` names."""
    name = _required(config, key)
    value = environ.get(name)
    if not value:
        raise ValueError(f"environment variable {name} (named by auth.{key}) is not set")
    return value


def _check_header_value(what: str, value: str) -> None:
    """Refuse empty values and line breaks, which would split the HTTP header."""
    if not value or "\r" in value or "\n" in value:
        raise ValueError(f"{what} must be a non-empty single line")


def _token_from(answer: requests.Response, where: str) -> tuple[str, float]:
    """access_token and expires_in from a token response, or RemoteGarbage."""
    try:
        doc = jsonio.loads(answer.content)
    except ValueError:
        doc = None
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise RemoteGarbage(f"token endpoint {where} answered without an access_token",
                            http_status=answer.status_code)
    if str(doc.get("token_type", "bearer")).lower() != "bearer":
        raise RemoteRejected(f"token endpoint {where} issued a {doc['token_type']!r} token; "
                             "only bearer tokens are supported", http_status=answer.status_code)
    expires_in = doc.get("expires_in", DEFAULT_EXPIRES_IN)
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) \
            or expires_in <= 0:
        raise RemoteGarbage(f"token endpoint {where} answered a bad expires_in",
                            http_status=answer.status_code)
    return token, float(expires_in)


def _oauth_error(answer: requests.Response) -> str:
    """The OAuth error code and description (never the token or the assertion)."""
    try:
        doc = jsonio.loads(answer.content)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "error" not in doc:
        return f"HTTP {answer.status_code}"
    description = doc.get("error_description")
    text = f"{doc['error']}: {description}" if description else str(doc["error"])
    return text[:500]


def _seconds(value: str | None) -> float | None:
    """A Retry-After given in seconds (the token endpoint rarely sends a date)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
