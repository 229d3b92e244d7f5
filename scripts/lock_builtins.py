"""Record the builtin servers' versions and tool definition hashes in seed/builtins.lock.json.

    .venv/bin/python scripts/lock_builtins.py

Run it after changing a builtin tool's definition (name, description, schemas, annotations) and bumping that
server's `version` in seed/registry.yaml; `tests/test_seed.py` fails until both are done.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bastion.builtins import LOCK_FILE, builtin_lock
from registry.context import RegistryContext
from registry.settings import RegistrySettings


def main() -> int:
    seed_file = LOCK_FILE.parent / "registry.yaml"
    with tempfile.TemporaryDirectory(prefix="bastion-lock-") as scratch:
        settings = RegistrySettings(data_dir=Path(scratch) / "data", database_url=f"sqlite:///{scratch}/r.db",
                                    jwt_secret="lock-" + "x" * 40, seed_file=seed_file)  # fmt: skip
        ctx = RegistryContext.create(settings)
        try:
            lock = builtin_lock(ctx, seed_file)
        finally:
            ctx.db.dispose()
    LOCK_FILE.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    print(f"wrote {LOCK_FILE}: " + ", ".join(f"{name}@{entry['version']}" for name, entry in sorted(lock.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
