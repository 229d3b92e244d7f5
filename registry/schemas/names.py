"""Validation of the names the registry hands out."""

from __future__ import annotations

import re

# Reverse-DNS namespace, one slash, a server part, as in the official MCP registry
# (whose pattern is looser: we also require dotted DNS labels in the namespace).
# The patterns are written once, unanchored, for Python, for the path convertor and for OpenAPI (JSON Schema
# `pattern`, ECMA 262): the `^…$` forms are what the schemas publish, and Python checks them with fullmatch
# (`$` alone would accept a trailing newline).
SERVER_NAME_BODY = (
    r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+"
    r"/[a-zA-Z0-9._-]+"
)
SERVER_NAME_PATTERN = f"^{SERVER_NAME_BODY}$"
SERVER_NAME = re.compile(SERVER_NAME_PATTERN)
SERVER_NAME_MIN, SERVER_NAME_MAX = 3, 200
SERVER_NAME_RULE = "must be a reverse-DNS namespace, one '/', and a server part, e.g. 'dev.bastion/sql'"
# Short names prefix tool names as `short__tool`: no underscores, so the split is unambiguous.
SHORT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
SHORT_NAME = re.compile(SHORT_NAME_PATTERN)
TEAM_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"
TEAM_NAME = re.compile(TEAM_NAME_PATTERN)
# Valid both as an MCP tool name and as an LLM function-calling name.
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
NAMESPACE_SEPARATOR = "__"


def check_server_name(name: str) -> str:
    if not SERVER_NAME_MIN <= len(name) <= SERVER_NAME_MAX:
        raise ValueError(f"must be {SERVER_NAME_MIN} to {SERVER_NAME_MAX} characters long")
    if not SERVER_NAME.fullmatch(name):
        raise ValueError(SERVER_NAME_RULE)
    return name


def default_short_name(name: str) -> str:
    """`dev.bastion/url_dedupe` → `url-dedupe`."""
    tail = name.rsplit("/", 1)[-1].lower()
    short = re.sub(r"[^a-z0-9-]+", "-", tail).strip("-")
    if not short or not short[0].isalpha():
        short = "s-" + short
    return short[:32].rstrip("-")


def check_short_name(short: str) -> str:
    if not SHORT_NAME.fullmatch(short):
        raise ValueError("must be 1-32 characters: lowercase letters, digits and '-', starting with a letter")
    return short


def check_team_name(name: str) -> str:
    if not TEAM_NAME.fullmatch(name):
        raise ValueError("must be 1-64 characters: lowercase letters, digits and '-', starting with a letter")
    return name


def check_tool_name(name: str) -> str:
    if not TOOL_NAME.fullmatch(name):
        raise ValueError("must be 1-64 characters from [a-zA-Z0-9_-]")
    return name


def namespaced_tool_name(short: str, tool: str) -> str:
    return f"{short}{NAMESPACE_SEPARATOR}{tool}"


def split_namespaced_tool_name(name: str) -> tuple[str, str] | None:
    short, sep, tool = name.partition(NAMESPACE_SEPARATOR)
    if not sep or not short or not tool:
        return None
    return short, tool
