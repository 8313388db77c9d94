"""Persistence: tables, repositories, the unit of work, migrations."""
