"""A path convertor for server names: exactly `namespace/name`, raw or `%2F`-encoded."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class ServerNameConvertor(Convertor[str]):
    regex = r"[^/]+/[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("server", ServerNameConvertor())
