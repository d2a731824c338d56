"""The secret that lets a control plane ask a data plane to run a replay (`POST /replay`).

A replay runs code chosen by its caller on the data plane, which listens on every address,
so the route must be closed to the internet. Both planes read the same FFAAS_ADMIN_TOKEN;
the control plane does not send that token itself but `replay_token(admin_token)`, an
HMAC-SHA256 of a fixed label under the admin token: a data plane never receives the admin
token over the network, and a replay credential seen in a data plane's traffic or logs does
not open the admin API. With no admin token configured, data planes accept replays only
from loopback addresses.
"""

from __future__ import annotations

import hashlib
import hmac

REPLAY_TOKEN_LABEL = b"ffaas data-plane replay v1"


def replay_token(admin_token: str) -> str:
    """The bearer token of `POST /replay` for an installation whose admin token is `admin_token`."""
    return hmac.new(admin_token.encode(), REPLAY_TOKEN_LABEL, hashlib.sha256).hexdigest()


def replay_authorization(admin_token: str) -> dict[str, str]:
    """The headers a control plane sends with a replay; none when no admin token is configured."""
    return {"authorization": f"Bearer {replay_token(admin_token)}"} if admin_token else {}
