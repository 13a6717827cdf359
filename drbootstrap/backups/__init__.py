"""Backups that are proven to restore: the catalog (records kept as tags on the provider's
snapshots), taking them (`drbootstrap backup`), choosing one to restore, verifying a restore."""
