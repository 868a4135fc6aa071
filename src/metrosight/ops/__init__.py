"""Running an installation: host checks (``doctor``), backup and restore."""
