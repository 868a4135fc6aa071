"""persons: an entry (one authorisation on one watchlist) belongs to a person; a person may be on several lists

Every existing entry becomes its own person (named as the entry), so nothing is linked that an operator did not
link.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "person_distinct",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_a", sa.Integer(), nullable=False),
        sa.Column("person_b", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["person_a"], ["persons.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["person_b"], ["persons.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_a", "person_b", name="uq_person_distinct_pair"),
    )
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        # a plain ADD COLUMN: batch mode would recreate `subjects`, and dropping the old table with foreign keys on
        # would cascade to its templates
        op.execute("ALTER TABLE subjects ADD COLUMN person_id INTEGER REFERENCES persons (id)")
    else:
        op.add_column("subjects", sa.Column("person_id", sa.Integer(), nullable=True))

    subjects = sa.table(
        "subjects",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("created_by", sa.String),
        sa.column("person_id", sa.Integer),
    )
    persons = sa.table(
        "persons",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("created_by", sa.String),
    )
    for sid, name, created_at, created_by in bind.execute(
        sa.select(subjects.c.id, subjects.c.name, subjects.c.created_at, subjects.c.created_by).order_by(subjects.c.id)
    ).all():
        pid = bind.execute(
            persons.insert().values(name=name, created_at=created_at, created_by=created_by).returning(persons.c.id)
        ).scalar_one()
        bind.execute(subjects.update().where(subjects.c.id == sid).values(person_id=pid))

    op.create_index("ix_subjects_person_id", "subjects", ["person_id"], unique=False)
    if not sqlite:  # SQLite keeps the column nullable (the store always sets it)
        op.alter_column("subjects", "person_id", existing_type=sa.Integer(), nullable=False)
        op.create_foreign_key("fk_subjects_person_id_persons", "subjects", "persons", ["person_id"], ["id"])


def downgrade() -> None:
    op.drop_index("ix_subjects_person_id", table_name="subjects")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_subjects_person_id_persons", "subjects", type_="foreignkey")
    op.drop_column("subjects", "person_id")
    op.drop_table("person_distinct")
    op.drop_table("persons")
