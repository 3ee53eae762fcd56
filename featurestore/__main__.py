"""``python -m featurestore``: the command-line interface."""

from __future__ import annotations

from featurestore.cli.main import main

main()
