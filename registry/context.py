"""Everything a request handler needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from registry.auth import TokenVerifier
from registry.db import Database
from registry.services.access import Access
from registry.services.discovery import Discovery
from registry.services.facts import AccessFacts
from registry.settings import RegistrySettings


@dataclass
class RegistryContext:
    settings: RegistrySettings
    db: Database
    verifier: TokenVerifier
    discovery: Discovery
    access: Access
    facts: AccessFacts

    @classmethod
    def create(cls, settings: RegistrySettings, db: Database | None = None) -> RegistryContext:
        database = db or Database(settings.effective_database_url)
        facts = AccessFacts(settings.registry_cache_ttl)
        database.on_governed_change(facts.invalidate)
        return cls(
            settings=settings,
            db=database,
            verifier=TokenVerifier(settings),
            discovery=Discovery(settings.effective_public_url, facts),
            access=Access(settings, facts),
            facts=facts,
        )
