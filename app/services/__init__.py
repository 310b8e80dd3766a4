"""Use cases and the engine. Imports no views; only app.services.engine_thread imports Qt."""
