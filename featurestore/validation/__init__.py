"""featurestore.validation."""
