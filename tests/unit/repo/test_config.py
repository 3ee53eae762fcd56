from __future__ import annotations

import hashlib
import json
import math
import pickle
import string
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from featurestore.errors import ConfigError
from featurestore.repo.config import (
    FeatureLoggingConfig,
    RedisOnlineStoreConfig,
    RepoConfig,
    Secret,
    ServingConfig,
    SqliteOnlineStoreConfig,
    _parse,
    load_config,
)


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
    with pytest.raises(ConfigError, match=r"'online_store.pth' is not a setting"):
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


# -- messages in the file's terms (issue 10 item 10) ------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("online_stor: {type: sqlite}", "'online_stor' is not a setting. Did you mean 'online_store'?"),
        ("online_store: {type: sqllite}", "'online_store.type' is 'sqllite', which is not a type of online_store. Did you mean 'sqlite'? Use one of: sqlite, redis."),
        ("online_store: {path: x.db}", "'online_store' needs a 'type:' key, one of: sqlite, redis."),
        ("online_store: {type: redis, urll: x}", "'online_store.urll' is not a setting. Did you mean 'online_store.url'?"),
        ("offline_store: {type: duckb}", "'offline_store.type' is 'duckb', which is not a type of offline_store. Did you mean 'duckdb'?"),
        ("serving: {api_key: [k]}", "'serving.api_key' is not a setting. Did you mean 'serving.api_keys'?"),
        ("serving: {api_keys: k}", "'serving.api_keys' must be a list, e.g. [a, b] (or [a] for one)."),
        ("serving: {zzzz: 1}", "'serving.zzzz' is not a setting. The keys there are: api_keys, "),
        ("serving: {max_entities: 0}", "'serving.max_entities': Input should be greater than or equal to 1."),
    ],
)  # fmt: skip
def test_config_errors_name_the_key_path_and_the_closest_key_or_type(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"project: p\n{yaml_text}\n"))
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'featurestore.yaml'} is invalid: {message}")
    assert "Extra inputs" not in text
    assert "Input tag" not in text
    assert "\n" not in text


def test_every_error_of_a_file_is_named_once(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "projet: p\nonline_store: {type: sqllite}\n"))
    text = str(info.value)
    assert "'projet' is not a setting. Did you mean 'project'?" in text
    assert "'project' is required." in text
    assert "Did you mean 'sqlite'?" in text


def test_a_missing_file_names_the_fix_for_the_cli_and_for_python(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "or point FeatureStore(repo_path=...) at the folder that holds one" in str(info.value)
    assert "--repo" not in str(info.value)
    assert "or point --repo at the folder that holds one" in info.value.message("cli")


def test_yaml_errors_give_the_place_not_the_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "project: p\npassword: hunter22 :\n  - x\n"))
    assert "line 2" in str(info.value)
    assert "hunter22" not in str(info.value)


# -- secrets are never printed (issue 10 item 6) -----------------------------------------------

SECRET = "s3cret-Value-42"


def everything_printed(err: BaseException) -> str:
    """The message, and the traceback --debug prints, with every chained exception."""
    return str(err) + "".join(traceback.format_exception(err))


@pytest.mark.parametrize(
    "yaml_text",
    [
        'serving: {api_keys: "${FS_TEST_KEY}"}',
        'serving: {api_keys: {key: "${FS_TEST_KEY}"}}',
        'serving: {api_keys: ["${FS_TEST_KEY}"], max_entities: "${FS_TEST_KEY}"}',
        'online_store: {type: redis, password: ["${FS_TEST_KEY}"]}',
        'online_store: {type: redis, password: "${FS_TEST_KEY}", timeout_s: "${FS_TEST_KEY}"}',
        'online_store: {type: redis, url: "redis://:${FS_TEST_KEY}@h:1/0", max_connections: 0}',
        'online_store: {type: sqllite, password: "${FS_TEST_KEY}"}',
        'online_store: {type: "${FS_TEST_KEY}"}',
        'project: "${FS_TEST_KEY}"\nserving: {api_keys: "${FS_TEST_KEY}"}',
    ],
)
def test_a_mistyped_config_never_prints_a_secret(tmp_path, monkeypatch, yaml_text):
    monkeypatch.setenv("FS_TEST_KEY", SECRET)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"project: p\n{yaml_text}\n"))
    assert SECRET not in everything_printed(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@given(
    # The "s3c" prefix keeps a drawn secret from being a class or key name the output shows.
    secret=st.text(alphabet=string.ascii_letters + string.digits, min_size=9, max_size=27).map(
        lambda s: f"s3c{s}"
    ),
    where=st.sampled_from(["api_keys", "password", "url"]),
    shape=st.sampled_from(["string", "list", "object", "number-field"]),
    typo=st.sampled_from(["", "servng: {}", "online_store_x: 1", "registry: [1]"]),
)
def test_no_config_mistake_prints_a_secret(tmp_path_factory, secret, where, shape, typo):
    """Property: wherever a secret sits and whatever else is wrong, no output carries it."""
    value = {
        "string": f'"{secret}"',
        "list": f'["{secret}"]',
        "object": f'{{k: "{secret}"}}',
        "number-field": f'["{secret}"], timeout_s: "{secret}", max_entities: "{secret}"',
    }[shape]
    section = {
        "api_keys": f"serving: {{api_keys: {value}}}",
        "password": f"online_store: {{type: redis, password: {value}}}",
        "url": f'online_store: {{type: redis, url: "redis://u:{secret}@h:1/0", timeout_s: -1}}',
    }[where]
    repo = tmp_path_factory.mktemp("cfg")
    (repo / "featurestore.yaml").write_text(f"project: p\n{section}\n{typo}\n")
    try:
        config = load_config(repo)
    except ConfigError as err:
        printed = everything_printed(err)
    else:
        printed = repr(config) + str(config)
    assert secret not in printed


def test_a_redis_url_password_is_masked_in_reprs():
    config = RedisOnlineStoreConfig(type="redis", url=f"redis://user:{SECRET}@host:6379/0")
    assert SECRET not in repr(config)
    assert "redis://user:***@host:6379/0" in repr(config)
    assert config.url.endswith(f"{SECRET}@host:6379/0")  # the value itself is untouched
    plain = RedisOnlineStoreConfig(type="redis", url="redis://host:6379/0")
    assert "redis://host:6379/0" in repr(plain)


# -- one set of rules for featurestore.yaml and for sections built in Python -------------------


def test_sections_built_in_python_are_validated_by_the_same_rules():
    with pytest.raises(ConfigError) as info:
        ServingConfig(max_entities=0)
    assert str(info.value) == (
        "ServingConfig is invalid: 'max_entities': Input should be greater than or equal to 1."
    )
    with pytest.raises(ConfigError, match=r"'online_store.type' is 'sqllite'.*'sqlite'\?"):
        RepoConfig(project="p", online_store={"type": "sqllite"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'project': String should match pattern"):
        RepoConfig(project="not a name")
    with pytest.raises(ConfigError, match=r"'serving' must be a mapping of its settings"):
        RepoConfig(project="p", serving=FeatureLoggingConfig())  # type: ignore[arg-type]


def test_a_mapping_becomes_its_section_and_values_are_converted():
    config = RepoConfig(
        project="p",
        online_store={"type": "redis", "timeout_s": "2.5", "password": "pw"},  # type: ignore[arg-type]
    )
    assert config.online_store == RedisOnlineStoreConfig(type="redis", timeout_s=2.5, password="pw")  # type: ignore[arg-type]
    assert isinstance(config.online_store.password, Secret)
    assert config.online_store.password.get_secret_value() == "pw"
    assert "pw" not in repr(config)


def test_model_copy_validates_the_update():
    config = RepoConfig(project="p")
    copy = config.model_copy(update={"online_store": SqliteOnlineStoreConfig(path="x.db")})
    assert copy.online_store.path == "x.db"
    assert config.online_store.path == "data/online.db"
    with pytest.raises(ConfigError, match="'project'"):
        config.model_copy(update={"project": "no spaces allowed"})


def test_sections_are_frozen_and_compare_by_value():
    config = RepoConfig(project="p")
    with pytest.raises(AttributeError):
        config.project = "q"  # type: ignore[misc]
    assert config == RepoConfig(project="p")
    assert hash(config) == hash(RepoConfig(project="p"))
    assert config != RepoConfig(project="q")
    assert config.serving is not RepoConfig(project="p").serving  # defaults are built anew
    assert pickle.loads(pickle.dumps(config)) == config


def test_sections_take_known_keywords_only_and_need_the_required_ones():
    with pytest.raises(TypeError, match="unexpected keyword argument 'projet'"):
        RepoConfig(projet="p")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing required keyword argument: 'project'"):
        RepoConfig()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing required keyword argument: 'type'"):
        RedisOnlineStoreConfig()  # type: ignore[call-arg]


INT_BOUNDS = {"max_entities": 1, "max_body_bytes": 1024, "max_connections": 1}
FLOAT_BOUNDS = {"registry_refresh_s": (0.0, False), "body_timeout_s": (0.0, True)}
"""serving's numeric settings: int minimums; float (minimum, whether it is excluded)."""


@st.composite
def int_setting(draw, bound: int) -> tuple[str, int | None]:
    """A YAML value for an int setting and the int it must give, or None when invalid."""
    if draw(st.integers(0, 4)) == 0:  # one key in five is wrong, so whole files often pass
        n = draw(st.integers(bound - 3, bound - 1))
        wrong = [str(n), f'"{n}"', f"{bound}.5", "true", "[1]", '"many"', "null"]
        return draw(st.sampled_from(wrong)), None
    n = draw(st.integers(bound, bound + 10**6))
    return draw(st.sampled_from([(str(n), n), (f'"{n}"', n), (f"{n}.0", n)]))  # "..": ${ENV}


@st.composite
def float_setting(draw, bound: float, strict: bool) -> tuple[str, float | None]:
    if draw(st.integers(0, 4)) == 0:
        x = bound if strict else bound - draw(st.sampled_from([0.5, 1.0, 2.0]))
        wrong = [repr(x), f'"{x!r}"', '".nan"', '"soon"', "false", "{a: 1}"]
        return draw(st.sampled_from(wrong)), None
    x = draw(st.floats(bound, bound + 1e6).map(lambda v: round(v, 3)).filter(lambda v: v > bound))
    return draw(st.sampled_from([(repr(x), x), (f'"{x!r}"', x)]))


@given(data=st.data())
def test_numeric_settings_accept_exactly_their_documented_values(tmp_path_factory, data):
    """Property: each value is kept (as its number) when the docs' rule allows it; otherwise
    the file is refused with one problem naming that key, and no other key is blamed."""
    cases = {k: data.draw(int_setting(b), label=k) for k, b in INT_BOUNDS.items()}
    cases |= {k: data.draw(float_setting(*b), label=k) for k, b in FLOAT_BOUNDS.items()}
    body = ", ".join(f"{key}: {text}" for key, (text, _) in cases.items())
    repo = write(tmp_path_factory.mktemp("cfg"), f"project: p\nserving: {{{body}}}\n")
    bad = {key for key, (_, expected) in cases.items() if expected is None}
    if not bad:
        serving = load_config(repo).serving
        for key, (_, expected) in cases.items():
            assert getattr(serving, key) == expected
            assert type(getattr(serving, key)) is (int if key in INT_BOUNDS else float)
        return
    with pytest.raises(ConfigError) as info:
        load_config(repo)
    for key in cases:
        assert str(info.value).count(f"'serving.{key}'") == (1 if key in bad else 0), key


# -- the parsed document is cached, by the file's content (issue 10 item 13) -------------------

REDIS_YAML = (
    'project: fraud\nonline_store: {type: redis, url: "${TEST_REDIS_URL:-redis://h:1/0}", '
    "timeout_s: 2}\nserving: {max_entities: 10, api_keys: [a, b], docs: yes}\n"
)


def _load_in_fresh_process(repo: Path) -> dict[str, object]:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from featurestore.repo.config import load_config\n"
        f"config = load_config(Path({str(repo)!r}))\n"
        "print(json.dumps({'yaml': 'yaml' in sys.modules, 'config': repr(config)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_a_second_load_of_the_same_file_needs_no_yaml_parser(tmp_path):
    repo = write(tmp_path, REDIS_YAML)
    first = _load_in_fresh_process(repo)
    second = _load_in_fresh_process(repo)
    assert first["yaml"] is True
    assert second["yaml"] is False
    assert second["config"] == first["config"] == repr(load_config(repo))
    assert (repo / "__pycache__" / "featurestore.yaml.json").is_file()


def test_an_edited_file_is_parsed_again(tmp_path):
    repo = write(tmp_path, "project: before\n")
    assert load_config(repo).project == "before"
    write(repo, "project: after\nserving: {max_entities: 0}\n")
    with pytest.raises(ConfigError, match=r"'serving\.max_entities'"):
        load_config(repo)
    write(repo, "project: after\n")
    assert load_config(repo).project == "after"


def test_env_references_are_resolved_on_every_load(tmp_path, monkeypatch):
    repo = write(tmp_path, REDIS_YAML)
    monkeypatch.setenv("TEST_REDIS_URL", "redis://one:1/0")
    assert load_config(repo).online_store.url == "redis://one:1/0"  # type: ignore[union-attr]
    monkeypatch.setenv("TEST_REDIS_URL", "redis://two:2/0")
    assert load_config(repo).online_store.url == "redis://two:2/0"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "cache",
    [
        b"\xff not json",
        b"[]",
        b'{"format": 1, "sha256": "0", "document": {"project": "stale"}}',
        b'{"format": 99, "sha256": "SHA", "document": {"project": "future"}}',
        b'{"format": 1, "sha256": "SHA"}',
    ],
)
def test_a_bad_or_stale_cache_is_ignored_and_replaced(tmp_path, cache):
    repo = write(tmp_path, "project: real\n")
    sha = hashlib.sha256(b"project: real\n").hexdigest()
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "featurestore.yaml.json").write_bytes(
        cache.replace(b"SHA", sha.encode())
    )
    assert load_config(repo).project == "real"
    entry = json.loads((repo / "__pycache__" / "featurestore.yaml.json").read_text())
    assert entry["document"] == {"project": "real"}


def test_a_repo_folder_that_cannot_hold_the_cache_is_no_error(tmp_path):
    repo = write(tmp_path, "project: p\n")
    (repo / "__pycache__").write_text("a file where the cache folder would go")
    assert load_config(repo).project == "p"
    assert load_config(repo).project == "p"


def _same(a: object, b: object) -> bool:
    """Equal with the same types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    return a == b


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()  # NaN and infinities included: JSON cannot hold them
    | st.text(max_size=8)
    | st.dates()  # YAML reads them as dates: JSON cannot hold them
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=5) | st.integers(0, 3) | st.booleans(), inner, max_size=3
        )
    ),
    max_leaves=10,
)


@given(document=DOCUMENTS, flow=st.booleans())
def test_a_cached_document_is_exactly_what_yaml_reads(tmp_path_factory, document, flow):
    """Property: the first and the second parse (cache or not) give what PyYAML reads."""
    repo = tmp_path_factory.mktemp("doc")
    text = yaml.safe_dump(document, default_flow_style=flow)
    (repo / "featurestore.yaml").write_text(text)
    expected = yaml.safe_load(text)
    assert _same(_parse(text, repo / "featurestore.yaml"), expected)
    assert _same(_parse(text, repo / "featurestore.yaml"), expected)
    cache = repo / "__pycache__" / "featurestore.yaml.json"
    if cache.exists():
        assert _same(json.loads(cache.read_text())["document"], expected)
