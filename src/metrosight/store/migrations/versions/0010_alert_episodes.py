"""alert episodes: an alert is one person's episode; each matching track is a sighting of it

Every existing alert becomes an episode of one sighting (its own event id, camera, times, score and crop), of the
person its entry belongs to.

Revision ID: 0010
Revises: 0009
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sightings()
    _alert_columns()
    _backfill()


def _sightings() -> None:
    """The sightings table."""
    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("watchlist", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("media_origin", sa.Float(), nullable=True),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("crop_path", sa.String(length=1024), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["entry_id"], ["subjects.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_sightings_alert_id", "sightings", ["alert_id"], unique=False)


def _alert_columns() -> None:
    """The alerts' episode columns."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # plain ADD COLUMNs (batch mode would recreate `alerts`, and dropping it would cascade to its reviews)
    if sqlite:
        op.execute("ALTER TABLE alerts ADD COLUMN person_id INTEGER REFERENCES persons (id) ON DELETE SET NULL")
    else:
        op.add_column("alerts", sa.Column("person_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_alerts_person_id_persons", "alerts", "persons", ["person_id"], ["id"], ondelete="SET NULL"
        )
    op.add_column("alerts", sa.Column("entries", sa.JSON(), nullable=True))
    op.add_column("alerts", sa.Column("group_key", sa.String(length=80), nullable=True))
    op.add_column("alerts", sa.Column("first_at", sa.Float(), nullable=True))
    op.add_column("alerts", sa.Column("last_at", sa.Float(), nullable=True))
    op.add_column("alerts", sa.Column("sightings", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("alerts", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_alerts_person_id", "alerts", ["person_id"], unique=False)


def _tables() -> tuple[sa.TableClause, sa.TableClause, sa.TableClause]:
    """The alerts, subjects and sightings tables as this revision knows them."""
    alerts = sa.table(
        "alerts",
        sa.column("created_at", sa.DateTime(timezone=True)),
        *(
            sa.column(c)
            for c in (
                "id",
                "event_id",
                "camera_id",
                "track_id",
                "subject_id",
                "watchlist",
                "score",
                "distance",
                "first_seen",
                "last_seen",
                "samples",
                "crop_path",
                "run_id",
                "person_id",
                "first_at",
                "last_at",
                "group_key",
            )
        ),
    )
    subjects = sa.table("subjects", sa.column("id"), sa.column("person_id"))
    sightings = sa.table(
        "sightings",
        sa.column("created_at", sa.DateTime(timezone=True)),
        *(
            sa.column(c)
            for c in (
                "alert_id",
                "event_id",
                "camera_id",
                "track_id",
                "entry_id",
                "watchlist",
                "score",
                "distance",
                "first_seen",
                "last_seen",
                "first_at",
                "last_at",
                "samples",
                "crop_path",
                "run_id",
            )
        ),
    )
    return alerts, subjects, sightings


def _backfill() -> None:
    """Every existing alert becomes an episode of one sighting."""
    bind = op.get_bind()
    alerts, subjects, sightings = _tables()
    persons = dict(bind.execute(sa.select(subjects.c.id, subjects.c.person_id)).all())
    for a in bind.execute(sa.select(alerts)).mappings().all():
        created = a["created_at"]
        if created.tzinfo is None:  # SQLite gives naive UTC
            created = created.replace(tzinfo=UTC)
        at = created.timestamp()
        bind.execute(
            alerts.update()
            .where(alerts.c.id == a["id"])
            .values(
                person_id=persons.get(a["subject_id"]), first_at=at, last_at=at, group_key=f"camera:{a['camera_id']}"
            )
        )
        bind.execute(
            sightings.insert().values(
                alert_id=a["id"],
                event_id=a["event_id"],
                camera_id=a["camera_id"],
                track_id=a["track_id"],
                entry_id=a["subject_id"],
                watchlist=a["watchlist"],
                score=a["score"],
                distance=a["distance"],
                first_seen=a["first_seen"],
                last_seen=a["last_seen"],
                first_at=at,
                last_at=at,
                samples=a["samples"],
                crop_path=a["crop_path"],
                run_id=a["run_id"],
                created_at=created,
            )
        )


def downgrade() -> None:
    op.drop_index("ix_alerts_person_id", table_name="alerts")
    for col in ("updated_at", "sightings", "last_at", "first_at", "group_key", "entries"):
        op.drop_column("alerts", col)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_alerts_person_id_persons", "alerts", type_="foreignkey")
    op.drop_column("alerts", "person_id")
    op.drop_index("ix_sightings_alert_id", table_name="sightings")
    op.drop_table("sightings")
