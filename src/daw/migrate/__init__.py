"""Database migrations: read migration sources, lint their statements, apply them.

Forks, validation and promotion to production build on these pieces.
"""
