"""featurestore.online."""
