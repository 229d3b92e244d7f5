"""server_versions: prompts, resources and resource templates; policies.tool widened for `prompt:`/`resource:` keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
COLUMNS = ("prompts", "resources", "resource_templates")


# New columns with a constant default: ALTER TABLE ADD COLUMN on both databases, no table copy. Widening
# policies.tool is an ALTER on PostgreSQL; SQLite does not enforce VARCHAR lengths, but the schema is kept equal
# to the models on both (tests/test_health_migrations.py), so batch mode copies the small policies table there.


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("server_versions", sa.Column(column, JSON, nullable=False, server_default="[]"))
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.alter_column(
            "tool", type_=sa.String(length=80), existing_type=sa.String(length=64), existing_nullable=False
        )


def downgrade() -> None:
    # Keys longer than the old column held (long `prompt:`/`resource:` keys) cannot survive the narrowing.
    op.execute("DELETE FROM policies WHERE length(tool) > 64")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.alter_column(
            "tool", type_=sa.String(length=64), existing_type=sa.String(length=80), existing_nullable=False
        )
    for column in COLUMNS:
        op.execute(f"ALTER TABLE server_versions DROP COLUMN {column}")
