"""alarms: per-watchlist alert policies, each alert's alarm state, and the alarm's transitions

Existing alerts raise no alarm (``alarm_state`` NULL): only alerts opened after the upgrade are raised under a
policy. Plain ADD COLUMNs on ``alerts`` (batch mode would recreate the table, and dropping it would cascade to its
reviews and sightings).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_policies",
        sa.Column("watchlist_id", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("colour", sa.String(length=7), nullable=True),
        sa.Column("ack_required", sa.Boolean(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("escalate_after_s", sa.Integer(), nullable=True),
        sa.Column("escalate_to", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["watchlist_id"], ["watchlists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("watchlist_id"),
    )
    op.add_column("alerts", sa.Column("alarm_state", sa.String(length=16), nullable=True))
    op.add_column("alerts", sa.Column("priority", sa.String(length=16), nullable=True))
    op.add_column("alerts", sa.Column("colour", sa.String(length=7), nullable=True))
    op.add_column("alerts", sa.Column("ack_required", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("alerts", sa.Column("policy_watchlist", sa.String(length=128), nullable=True))
    op.add_column("alerts", sa.Column("owner", sa.String(length=128), nullable=True))
    op.add_column("alerts", sa.Column("claimed_at", sa.Float(), nullable=True))
    op.add_column("alerts", sa.Column("acknowledged_at", sa.Float(), nullable=True))
    op.add_column("alerts", sa.Column("escalate_at", sa.Float(), nullable=True))
    op.add_column("alerts", sa.Column("escalate_to", sa.String(length=32), nullable=True))
    op.add_column("alerts", sa.Column("escalated_at", sa.Float(), nullable=True))
    op.create_index("ix_alerts_alarm_state", "alerts", ["alarm_state"], unique=False)
    op.create_index("ix_alerts_escalate_at", "alerts", ["escalate_at"], unique=False)
    op.create_table(
        "alarm_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("previous_owner", sa.String(length=128), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alarm_transitions_alert_id", "alarm_transitions", ["alert_id"], unique=False)
    op.create_index("ix_alarm_transitions_published_at", "alarm_transitions", ["published_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alarm_transitions_published_at", table_name="alarm_transitions")
    op.drop_index("ix_alarm_transitions_alert_id", table_name="alarm_transitions")
    op.drop_table("alarm_transitions")
    op.drop_index("ix_alerts_escalate_at", table_name="alerts")
    op.drop_index("ix_alerts_alarm_state", table_name="alerts")
    for col in (
        "escalated_at",
        "escalate_to",
        "escalate_at",
        "acknowledged_at",
        "claimed_at",
        "owner",
        "policy_watchlist",
        "ack_required",
        "colour",
        "priority",
        "alarm_state",
    ):
        op.drop_column("alerts", col)
    op.drop_table("alert_policies")
