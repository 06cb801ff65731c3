"""Pure readers: PDF bytes, email bytes, command text -> typed records. No database, no network."""
