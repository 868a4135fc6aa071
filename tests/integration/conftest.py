"""Fixtures shared by the integration tests: real Redis and PostgreSQL servers (see ``servers.py``)."""

from tests.integration.servers import durable_redis, pg_url, postgres_server, redis_server  # noqa: F401
