"""audit log: DELETE refused except the retention purge's prefix (TRUNCATE refused on PostgreSQL)

The chain itself is keyed from the first append after this migration (an ``audit.keyed`` entry marks where the
unkeyed links end; see metrosight.audit.log).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MESSAGE = "audit_log is append-only (only the retention purge deletes, oldest entries first)"


def upgrade() -> None:
    bind = op.get_bind()
    # where the unkeyed chain of an existing log ends: the first keyed append marks it (once)
    op.execute(
        "INSERT INTO meta (key, value) SELECT 'audit_legacy_through', CAST(MAX(seq) AS VARCHAR(20)) FROM audit_log "
        "HAVING COUNT(*) > 0"
    )
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "WHEN OLD.seq > COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audit_purge_through'), 0) "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_no_delete() RETURNS trigger AS $$ BEGIN "
            "IF OLD.seq > COALESCE((SELECT value::bigint FROM meta WHERE key = 'audit_purge_through'), 0) THEN "
            f"RAISE EXCEPTION '{MESSAGE}'; END IF; RETURN OLD; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_no_delete()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_update()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    op.execute("DELETE FROM meta WHERE key = 'audit_legacy_through'")
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_no_delete()")
