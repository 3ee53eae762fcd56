"""Feature repos: configuration, loading the definition files, and the registry."""
