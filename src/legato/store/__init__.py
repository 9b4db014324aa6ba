"""Storage adapters: SQLAlchemy Core over SQLite (embedded default) and PostgreSQL.

All SQL in Legato lives in this package. Everything else calls the store classes here through
the protocols in `legato.ports`.
"""
