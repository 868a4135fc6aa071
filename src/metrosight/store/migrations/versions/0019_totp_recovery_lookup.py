"""TOTP recovery codes: a keyed lookup tag, so a typed code is checked against one Argon2id hash, not all of them

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("totp_recovery_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lookup", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_totp_recovery_codes_lookup"), ["lookup"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE totp_recovery_codes ALTER COLUMN lookup SET STATISTICS 0")


def downgrade() -> None:
    with op.batch_alter_table("totp_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_totp_recovery_codes_lookup"))
        batch_op.drop_column("lookup")
