"""`featurestore init` writes exactly the example repo's files: the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from featurestore.cli.main import template_files

FEATURE_REPO = Path(__file__).resolve().parents[3] / "feature_repo"


def test_init_templates_equal_the_example_repo_files():
    templates = template_files()
    assert set(templates) == {
        "features.py",
        "featurestore.yaml",
        "generate_data.py",
        ".featurestoreignore",
        "README.md",
    }
    for name, text in templates.items():
        assert (FEATURE_REPO / name).read_text() == text, (
            f"featurestore/templates/fraud differs from feature_repo/{name}; copy one onto the other"
        )


def test_example_repo_ignores_its_data_generator():
    ignored = (FEATURE_REPO / ".featurestoreignore").read_text().split()
    assert "generate_data.py" in ignored
