"""Training recipes for the demo models shipped with the service (torch needed, never served)."""
