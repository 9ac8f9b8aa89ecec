"""One module per model, each defining `SPEC` (a `backend.models.registry.ModelSpec`); registry.MODEL_MODULES
lists them. Heavy libraries are imported inside functions, so that importing a module stays cheap."""
