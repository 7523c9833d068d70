"""Infrastructure shared by every domain package: database, clock. Nothing domain-specific."""
