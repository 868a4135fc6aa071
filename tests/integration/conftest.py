"""Fixtures shared by the integration tests: real Redis and PostgreSQL servers (see ``servers.py``), a real OpenID
provider (``oidc_provider.py``)."""

from tests.integration.oidc_provider import oidc_provider_factory  # noqa: F401
from tests.integration.servers import durable_redis, pg_url, postgres_server, redis_server  # noqa: F401
