"""featurestore.serving."""
