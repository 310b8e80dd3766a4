"""The domain and its storage. Imports no Qt (checked by import-linter)."""
