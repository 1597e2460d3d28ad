"""Migration of the platform's data out of Azure Blob Storage (docs/migration.md)."""
