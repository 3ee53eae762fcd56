"""featurestore.consistency."""
