"""Server names in paths: exactly `namespace/name` (raw or `%2F`-encoded), documented and matched alike.

`{name:server}` routes only match a well-formed name, so `/servers/{name}/policy` cannot be mistaken for
the server `x/policy`. A request that addressed such a route with a malformed name (`DELETE
/admin/v1/servers/foo/policy`) is answered 404 "server 'foo' does not exist", as for any unknown server,
instead of a 405 from whichever other route its path happens to resemble: see `misnamed_server`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Annotated

from fastapi import Path
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import BaseRoute, Route

from registry.schemas.names import (
    SERVER_NAME_BODY,
    SERVER_NAME_MAX,
    SERVER_NAME_MIN,
    SERVER_NAME_PATTERN,
)


class ServerNameConvertor(Convertor[str]):
    regex = SERVER_NAME_BODY

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("server", ServerNameConvertor())

ServerName = Annotated[
    str,
    Path(
        description="Reverse-DNS `namespace/name`, e.g. `dev.bastion/sql` (the `/` raw or `%2F`-encoded)",
        pattern=SERVER_NAME_PATTERN,
        min_length=SERVER_NAME_MIN,
        max_length=SERVER_NAME_MAX,
        examples=["dev.bastion/sql"],
    ),
]

_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_]+))?\}")


@cache
def _loose(path: str) -> tuple[re.Pattern[str], tuple[str, ...]] | None:
    """`path` as a regex in which `{x:server}` matches anything; None when it has no server parameter."""
    parts: list[str] = []
    names: list[str] = []
    at = 0
    for m in _PARAM.finditer(path):
        parts.append(re.escape(path[at : m.start()]))
        if m.group(2) == "server":
            names.append(m.group(1))
            parts.append(f"(?P<{m.group(1)}>.+?)")
        else:
            parts.append(f"(?P<{m.group(1)}>[^/]+)")
        at = m.end()
    if not names:
        return None
    parts.append(re.escape(path[at:]))
    return re.compile("^" + "".join(parts) + "$"), tuple(names)


def misnamed_server(routes: Iterable[BaseRoute], method: str, path: str) -> str | None:
    """The malformed server name with which `method path` addressed one of `routes`, if it did.

    When several routes would take it (`/servers/a/tools/t/policy`: the tool policy of `a`, or the server
    policy of `a/tools/t`), the most specific one — the shortest name — is what the caller meant.
    """
    names: list[str] = []
    for route in routes:
        if not isinstance(route, Route) or (route.methods and method not in route.methods):
            continue
        loose = _loose(route.path)
        if loose is None:
            continue
        pattern, params = loose
        m = pattern.match(path)
        if m is not None:
            names.append(str(m.group(params[0])))
    return min(names, key=len) if names else None
