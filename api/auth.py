"""HTTP Basic users and bearer tokens from configuration (``LINEAGE_API_USERS`` / ``_TOKENS``).

Every route except health and metrics depends on ``authenticated``. Secrets are compared as
SHA-256 digests with ``hmac.compare_digest`` against every configured entry, so the time a
check takes says nothing about how much of a guess was right or which entry nearly matched.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from lineage_faust.settings import ApiAuth

from .errors import ApiError

CHALLENGE = {"WWW-Authenticate": 'Basic realm="lineage-faust", Bearer realm="lineage-faust"'}

# auto_error=False: a missing or malformed header is our 401 (in the envelope), and
# OpenAPI still documents both schemes (Swagger's "Authorize" button).
basic_scheme = HTTPBasic(auto_error=False, description="a user from LINEAGE_API_USERS")
bearer_scheme = HTTPBearer(auto_error=False, description="a token from LINEAGE_API_TOKENS")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Authenticator:
    def __init__(self, auth: ApiAuth) -> None:
        self.enabled = auth.enabled
        self._users = [(_digest(u), _digest(p)) for u, p in auth.users]
        self._tokens = [_digest(t) for t in auth.tokens]

    def check_basic(self, username: str, password: str) -> bool:
        user, secret = _digest(username), _digest(password)
        ok = False
        for known_user, known_secret in self._users:  # no early exit
            ok |= hmac.compare_digest(user, known_user) & hmac.compare_digest(secret, known_secret)
        return ok

    def check_token(self, token: str) -> bool:
        given = _digest(token)
        ok = False
        for known in self._tokens:
            ok |= hmac.compare_digest(given, known)
        return ok


async def authenticated(
    request: Request,
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    checker: Authenticator = request.app.state.authenticator
    if not checker.enabled:
        return
    if basic is not None and checker.check_basic(basic.username, basic.password):
        return
    if bearer is not None and checker.check_token(bearer.credentials):
        return
    given = basic is not None or bearer is not None
    raise ApiError(
        401,
        "wrong credentials" if given else "authentication required (HTTP Basic or bearer token)",
        headers=CHALLENGE,
    )
