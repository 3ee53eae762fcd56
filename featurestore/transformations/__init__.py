"""featurestore.transformations."""
