"""PostgreSQL keeps no statistics of template ciphertexts and wrapped watchlist keys

ANALYZE (autovacuum runs it on its own once a table has changed enough) copies sample values of every column into
the ``pg_statistic`` catalog as histogram bounds: up to 100 template ciphertexts and wrapped keys, left there after
the template is revoked or the key shredded (and the ``VACUUM (FULL)`` of the table does not touch the catalog).
The statistics target of ``templates.descriptor`` and ``watchlist_keys.wrapped_key`` is set to 0 (never sampled;
nothing queries by them), and the statistics already gathered are deleted when the migrating role may (a
superuser); otherwise a warning says what to run. No-op on SQLite (its ANALYZE samples only indexed columns).

Revision ID: 0012
Revises: 0011
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SECRET_COLUMNS = (("templates", "descriptor"), ("watchlist_keys", "wrapped_key"))
log = logging.getLogger(__name__)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, column in SECRET_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0")
    if conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
        for table, column in SECRET_COLUMNS:
            conn.execute(
                sa.text(
                    "DELETE FROM pg_statistic s USING pg_attribute a WHERE s.starelid = CAST(:t AS regclass)"
                    " AND a.attrelid = s.starelid AND a.attnum = s.staattnum AND a.attname = :c"
                ),
                {"t": table, "c": column},
            )
    else:
        log.warning(
            "statistics of templates.descriptor and watchlist_keys.wrapped_key gathered before this version may hold "
            "template ciphertexts: as a superuser run DELETE FROM pg_statistic WHERE starelid IN "
            "('templates'::regclass, 'watchlist_keys'::regclass); VACUUM (FULL) pg_statistic;"
        )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, column in SECRET_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS -1")
