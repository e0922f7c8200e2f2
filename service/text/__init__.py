"""Text handling around the model: sentence splitting and chat prompt rendering."""
