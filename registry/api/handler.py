"""The hot read path: query and encode in one worker-thread hop (the caller is authenticated first).

FastAPI runs every sync dependency and route in its own threadpool hop and re-encodes
returned dicts with `jsonable_encoder`; on the discovery and authorisation endpoints
those costs dominated the actual work. These handlers do the whole request in one hop and
return bytes encoded with orjson.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import orjson
from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from governance import Principal
from registry.api.deps import Unset, established
from registry.auth import authenticate
from registry.context import RegistryContext


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value, by_alias=True)
    return orjson.dumps(value, default=_default)


class JSONBytes(Response):
    media_type = "application/json"


async def respond(
    request: Request,
    work: Callable[[Session, Principal | None], Any],
    *,
    anonymous: bool = False,
) -> Response:
    """Run read-only ``work(session, caller)`` on a worker thread; encode its result.

    ``anonymous`` lets a request without a token through with ``caller=None`` when the
    deployment allows anonymous discovery.
    """
    ctx: RegistryContext = request.app.state.registry
    header = request.headers.get("authorization")
    # Routes are `AuthenticatedRoute`s: the caller is known before the request was parsed.
    known = established(request)

    def job() -> bytes:
        # The hot paths only read; API-key last-use stamps commit on their own.
        with ctx.db.read() as session:
            if not isinstance(known, Unset):
                caller = known
            elif header is None and anonymous and ctx.settings.discovery_anonymous:
                caller = None
            else:
                caller = authenticate(ctx.settings, ctx.verifier, session, header, ctx.facts)
            return encode(work(session, caller))

    return JSONBytes(await anyio.to_thread.run_sync(job))
