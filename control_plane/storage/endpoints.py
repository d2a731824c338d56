"""Endpoints, their deploys (history, oldest first) and their environment variables.

Invariants:
- `active_deploy_id` is NULL before the first deploy, and otherwise the id of one of the
  endpoint's own deploys.
- A deploy row, its module row and the switch of `active_deploy_id` commit together; a deploy
  stored without activation only joins the history.
- Rolling back only moves `active_deploy_id`; the deploy history is append-only.
- Deleting an endpoint deletes its deploys and environment (ON DELETE CASCADE); module
  bytes stay while another deploy refers to them (`modules.delete_unreferenced_modules`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiosqlite

from control_plane.storage.database import Database
from control_plane.storage.modules import store_module
from shared.timestamps import utc_now


@dataclass(frozen=True)
class Deploy:
    id: str
    endpoint_id: str
    module_hash: str
    created_at: str


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    active_deploy_id: str | None
    created_at: str
    deploy_history: tuple[Deploy, ...]


@dataclass(frozen=True)
class ActiveRoute:
    """What a data plane needs to serve an endpoint: its active deploy and environment."""

    endpoint_id: str
    deploy_id: str
    module_hash: str
    env: dict[str, str]


_ENDPOINT_COLUMNS = "id, name, active_deploy_id, created_at"
_DEPLOY_COLUMNS = "id, endpoint_id, module_hash, created_at"


async def create_endpoint(db: Database, name: str) -> Endpoint:
    endpoint = Endpoint(str(uuid.uuid4()), name, None, utc_now(), ())
    async with db.transaction() as connection:
        await connection.execute(
            "INSERT INTO endpoints (id, name, active_deploy_id, created_at) VALUES (?, ?, NULL, ?)",
            (endpoint.id, endpoint.name, endpoint.created_at),
        )
    return endpoint


async def get_endpoint(db: Database, endpoint_id: str) -> Endpoint | None:
    async with db.reading() as connection:
        return await _endpoint(connection, endpoint_id)


async def list_endpoints(db: Database) -> list[Endpoint]:
    """Every endpoint, oldest first, each with its deploy history oldest first."""
    async with db.reading() as connection:
        async with connection.execute(f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints ORDER BY seq") as cursor:
            rows = await cursor.fetchall()
        async with connection.execute(f"SELECT {_DEPLOY_COLUMNS} FROM deploys ORDER BY seq") as cursor:
            deploys = [Deploy(*row) for row in await cursor.fetchall()]
    history: dict[str, list[Deploy]] = {}
    for deploy in deploys:
        history.setdefault(deploy.endpoint_id, []).append(deploy)
    return [_endpoint_from_row(row, tuple(history.get(row[0], ()))) for row in rows]


async def delete_endpoint(db: Database, endpoint_id: str) -> bool:
    """Delete the endpoint; False if there was none."""
    async with db.transaction() as connection:
        cursor = await connection.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))
        return cursor.rowcount > 0


async def add_deploy(
    db: Database, endpoint_id: str, module_hash: str, data: bytes, *, activate: bool = True
) -> Deploy | None:
    """Store the module and a new deploy of it, and make that deploy active unless `activate` is
    False (it then only joins the history); None if no endpoint."""
    deploy = Deploy(str(uuid.uuid4()), endpoint_id, module_hash, utc_now())
    async with db.transaction() as connection:
        if await _endpoint_row(connection, endpoint_id) is None:
            return None
        await store_module(connection, module_hash, data)
        await connection.execute(
            "INSERT INTO deploys (id, endpoint_id, module_hash, created_at) VALUES (?, ?, ?, ?)",
            (deploy.id, deploy.endpoint_id, deploy.module_hash, deploy.created_at),
        )
        if activate:
            await connection.execute(
                "UPDATE endpoints SET active_deploy_id = ? WHERE id = ?", (deploy.id, endpoint_id)
            )
    return deploy


async def get_deploy(db: Database, deploy_id: str) -> Deploy | None:
    async with (
        db.reading() as connection,
        connection.execute(f"SELECT {_DEPLOY_COLUMNS} FROM deploys WHERE id = ?", (deploy_id,)) as cursor,
    ):
        row = await cursor.fetchone()
    return Deploy(*row) if row else None


async def activate_deploy(
    db: Database, endpoint_id: str, choose: Callable[[Endpoint], Deploy]
) -> Endpoint | None:
    """Make `choose(endpoint)` the active deploy, in one transaction; None if no endpoint.

    `choose` sees the endpoint as stored inside the transaction, and may raise to refuse;
    then nothing changes. It must return one of the endpoint's own deploys.
    """
    async with db.transaction() as connection:
        endpoint = await _endpoint(connection, endpoint_id)
        if endpoint is None:
            return None
        deploy = choose(endpoint)
        if deploy not in endpoint.deploy_history:
            raise ValueError(f"deploy {deploy.id} does not belong to endpoint {endpoint_id}")
        await connection.execute(
            "UPDATE endpoints SET active_deploy_id = ? WHERE id = ?", (deploy.id, endpoint_id)
        )
        return await _endpoint(connection, endpoint_id)


async def get_env(db: Database, endpoint_id: str) -> dict[str, str] | None:
    """The endpoint's environment variables; None if no endpoint."""
    async with db.reading() as connection:
        if await _endpoint_row(connection, endpoint_id) is None:
            return None
        return await _env(connection, endpoint_id)


async def replace_env(db: Database, endpoint_id: str, env: Mapping[str, str]) -> bool:
    """Replace all of the endpoint's environment variables; False if no endpoint."""
    async with db.transaction() as connection:
        if await _endpoint_row(connection, endpoint_id) is None:
            return False
        await connection.execute("DELETE FROM endpoint_env WHERE endpoint_id = ?", (endpoint_id,))
        await connection.executemany(
            "INSERT INTO endpoint_env (endpoint_id, name, value) VALUES (?, ?, ?)",
            [(endpoint_id, name, value) for name, value in env.items()],
        )
    return True


async def active_route(db: Database, endpoint_id: str) -> ActiveRoute | None:
    """The route to publish for the endpoint; None if it does not exist or has no active deploy."""
    routes = await _active_routes(db, "AND e.id = ?", (endpoint_id,))
    return routes[0] if routes else None


async def active_routes(db: Database) -> list[ActiveRoute]:
    """The route of every endpoint that has an active deploy."""
    return await _active_routes(db, "", ())


async def _active_routes(db: Database, condition: str, params: tuple[str, ...]) -> list[ActiveRoute]:
    async with db.reading() as connection:
        async with connection.execute(
            "SELECT e.id, d.id, d.module_hash FROM endpoints e JOIN deploys d ON d.id = e.active_deploy_id "
            f"WHERE 1 = 1 {condition} ORDER BY e.seq",
            params,
        ) as cursor:
            rows = await cursor.fetchall()
        return [ActiveRoute(row[0], row[1], row[2], await _env(connection, row[0])) for row in rows]


async def _endpoint_row(connection: aiosqlite.Connection, endpoint_id: str) -> aiosqlite.Row | None:
    async with connection.execute(
        f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?", (endpoint_id,)
    ) as cursor:
        return await cursor.fetchone()


async def _endpoint(connection: aiosqlite.Connection, endpoint_id: str) -> Endpoint | None:
    row = await _endpoint_row(connection, endpoint_id)
    if row is None:
        return None
    async with connection.execute(
        f"SELECT {_DEPLOY_COLUMNS} FROM deploys WHERE endpoint_id = ? ORDER BY seq", (endpoint_id,)
    ) as cursor:
        history = tuple(Deploy(*deploy) for deploy in await cursor.fetchall())
    return _endpoint_from_row(row, history)


def _endpoint_from_row(row: aiosqlite.Row, history: tuple[Deploy, ...]) -> Endpoint:
    endpoint_id, name, active_deploy_id, created_at = row
    return Endpoint(endpoint_id, name, active_deploy_id, created_at, history)


async def _env(connection: aiosqlite.Connection, endpoint_id: str) -> dict[str, str]:
    async with connection.execute(
        "SELECT name, value FROM endpoint_env WHERE endpoint_id = ? ORDER BY name", (endpoint_id,)
    ) as cursor:
        return {name: value for name, value in await cursor.fetchall()}
