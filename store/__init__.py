"""The projection database: definition registry, dossier projection, audit log, inboxes.

Written by activities, read by the gateway, the metrics exporter and lookups. Works the
same on SQLite (default, one file) and PostgreSQL (psycopg 3); the schema is owned by
the Alembic migrations in ``store/migrations`` (``python -m store.migrate upgrade``).

Functions take a SQLAlchemy ``Session`` and never commit: the caller owns the
transaction (``with session_factory.begin() as session: ...``).
"""
