"""Layer 3: regex rules written by people, and the rules file they live in.

A rule matches a host (glob), optionally a path (regex) and a value (regex), and a parameter name
(regex); it keeps or drops the parameter. Example rules file (YAML):

    platforms:            # hosts on a known platform whose host does not say so
      shop.example.com: shopify
    rules:
      - host: "*.example.com"
        param: "v|cb|_"
        value: "\\d{9,}"
        action: drop
        note: cache-busting timestamps
"""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tools.dedupe.priors import PLATFORMS_BY_NAME


class RulesError(ValueError):
    pass


class RegexRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("*", description="Host glob, e.g. '*.example.com'")
    path: str | None = Field(None, description="Regex searched in the path")
    param: str = Field(description="Regex the whole parameter name must match")
    value: str | None = Field(None, description="Regex the whole value must match")
    action: Literal["keep", "drop"]
    note: str = ""

    @field_validator("path", "param", "value")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern

    @cached_property
    def _param(self) -> re.Pattern[str]:
        return re.compile(self.param)

    @cached_property
    def _path(self) -> re.Pattern[str] | None:
        return re.compile(self.path) if self.path else None

    @cached_property
    def _value(self) -> re.Pattern[str] | None:
        return re.compile(self.value) if self.value is not None else None

    def applies_to_host(self, host: str) -> bool:
        return fnmatch.fnmatchcase(host, self.host)

    def matches_name(self, name: str) -> bool:
        return self._param.fullmatch(name) is not None

    @property
    def name_only(self) -> bool:
        """Whether the verdict depends on the name alone (and can be cached per host)."""
        return self.path is None and self.value is None

    def matches(self, name: str, value: str | None, path: str) -> bool:
        if self._param.fullmatch(name) is None:
            return False
        if self._path is not None and self._path.search(path) is None:
            return False
        return self._value is None or self._value.fullmatch(value or "") is not None

    def describe(self) -> str:
        where = f"host {self.host}" + (f", path ~ {self.path}" if self.path else "")
        value = f", value ~ {self.value}" if self.value is not None else ""
        note = f" ({self.note})" if self.note else ""
        return f"rule [{where}, param ~ {self.param}{value}] {self.action}s{note}"


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platforms: dict[str, str] = Field(default_factory=dict)
    rules: list[RegexRule] = Field(default_factory=list)

    @field_validator("platforms")
    @classmethod
    def _known_platforms(cls, value: dict[str, str]) -> dict[str, str]:
        for host, name in value.items():
            if name not in PLATFORMS_BY_NAME:
                raise ValueError(f"{host}: unknown platform {name!r}; known: {', '.join(sorted(PLATFORMS_BY_NAME))}")
        return {host.lower(): name for host, name in value.items()}


def load_rules(path: Path) -> RulesFile:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {path} is not valid YAML: {exc}") from None
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise RulesError(f"rules file {path}: {problems}") from None
