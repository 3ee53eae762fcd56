"""featurestore.cli."""
