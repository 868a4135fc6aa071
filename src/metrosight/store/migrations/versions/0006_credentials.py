"""credentials belong to people: who set a user's password; tokens minted for other users revoked

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_set_by", sa.String(length=128), nullable=True))
    # A token minted by one person to act as another let one person pass a two-person rule alone; such tokens are
    # refused from now on (metrosight.store.accounts) and marked revoked here, so listings show it.
    tokens = sa.table(
        "api_tokens",
        sa.column("user", sa.String),
        sa.column("created_by", sa.String),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
        sa.column("revoked_by", sa.String),
    )
    op.execute(
        tokens.update()
        .where(tokens.c.created_by != tokens.c.user, tokens.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.current_timestamp(), revoked_by="upgrade: minted for another user")
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_set_by")
