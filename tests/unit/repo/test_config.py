from __future__ import annotations

from pathlib import Path

import pytest

from featurestore.errors import ConfigError
from featurestore.repo.config import RedisOnlineStoreConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "featurestore.yaml").write_text(text)
    return tmp_path


def test_defaults_are_the_embedded_stores(tmp_path):
    config = load_config(write(tmp_path, "project: fraud\n"))
    assert config.online_store.type == "sqlite"
    assert config.offline_store.type == "duckdb"
    assert config.registry == "data/registry.json"


def test_env_references_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:9/0")
    config = load_config(
        write(tmp_path, 'project: fraud\nonline_store: {type: redis, url: "${TEST_REDIS_URL}"}\n')
    )
    assert isinstance(config.online_store, RedisOnlineStoreConfig)
    assert config.online_store.url == "redis://127.0.0.1:9/0"


def test_env_default_is_used_when_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    config = load_config(write(tmp_path, 'project: "${NOPE_UNSET:-fallback}"\n'))
    assert config.project == "fallback"


def test_unset_env_reference_names_the_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    path = write(tmp_path, 'project: fraud\nonline_store: {type: redis, url: "${NOPE_UNSET}"}\n')
    with pytest.raises(ConfigError, match=r"'online_store.url' refers to \$\{NOPE_UNSET\}"):
        load_config(path)


def test_unknown_keys_are_rejected_with_their_path(tmp_path):
    with pytest.raises(ConfigError, match=r"'online_store.sqlite.pth'.*Extra inputs"):
        load_config(write(tmp_path, "project: p\nonline_store: {type: sqlite, pth: x.db}\n"))


def test_unknown_top_level_key_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="'offline'"):
        load_config(write(tmp_path, "project: p\noffline: {}\n"))


def test_malformed_yaml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"featurestore.yaml is not valid YAML"):
        load_config(write(tmp_path, "project: [unclosed\n"))


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="featurestore init"):
        load_config(tmp_path)


def test_non_mapping_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_api_keys_are_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "s3cret")
    config = load_config(write(tmp_path, 'project: p\nserving: {api_keys: ["${TEST_API_KEY}"]}\n'))
    assert "s3cret" not in repr(config)
    assert config.serving.api_keys[0].get_secret_value() == "s3cret"
