"""Models: the registry (one `backend.models.zoo` module per model), teachers, students, adapters and export.

This package imports nothing, so a light caller stays light: import the module you need."""
