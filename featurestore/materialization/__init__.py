"""featurestore.materialization."""
