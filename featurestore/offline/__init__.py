"""featurestore.offline."""
