"""The worker side: claim → guard → send → track → record."""
