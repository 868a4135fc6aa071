"""template contributors: who added each template, and templates held until the entry is approved

Separation of duties (issue 15, finding 4): an entry is approved only by an approver who contributed none of its
templates, so each template records who added it (existing templates: the entry's creator). A template added by
someone other than the creator to an urgent entry that is not approved yet is ``held`` (not matched) until an
approver who contributed nothing approves the entry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(
        "UPDATE templates SET added_by = "
        "(SELECT subjects.created_by FROM subjects WHERE subjects.id = templates.subject_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_column("held")
        batch_op.drop_column("added_by")
