"""Names shared by every layer, importable without pulling in pydantic or numpy."""

DEFAULT_CUBE = "default"
