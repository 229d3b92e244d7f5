"""Everything a request handler needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from registry.auth import TokenVerifier
from registry.db import Database
from registry.services.access import Access
from registry.services.discovery import Discovery
from registry.settings import RegistrySettings


@dataclass
class RegistryContext:
    settings: RegistrySettings
    db: Database
    verifier: TokenVerifier
    discovery: Discovery
    access: Access

    @classmethod
    def create(cls, settings: RegistrySettings, db: Database | None = None) -> RegistryContext:
        return cls(
            settings=settings,
            db=db or Database(settings.effective_database_url),
            verifier=TokenVerifier(settings),
            discovery=Discovery(settings.effective_public_url),
            access=Access(settings),
        )
