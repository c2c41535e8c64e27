"""Alembic environment and revisions of the store's schema (run them with store.migrate)."""
