from __future__ import annotations

import subprocess
import sys

import pytest

import featurestore


def test_all_is_sorted_and_every_name_is_importable():
    assert featurestore.__all__ == sorted(featurestore.__all__)
    for name in featurestore.__all__:
        assert getattr(featurestore, name) is not None


def test_public_names_are_exactly_the_documented_set():
    assert set(featurestore.__all__) >= {
        "Entity",
        "FeatureService",
        "FeatureStore",
        "FeatureStoreError",
        "FeatureView",
        "Field",
        "LoggingConfig",
        "OnDemandFeatureView",
        "ParquetSource",
        "RequestSource",
        "on_demand_feature_view",
    }
    exported = {n for n in dir(featurestore) if not n.startswith("_")} - {"annotations"}
    # Subpackages appear as attributes once imported; everything else must be in __all__.
    modules = {n for n in exported if type(getattr(featurestore, n)).__name__ == "module"}
    assert exported - modules == set(featurestore.__all__)


def test_import_featurestore_stays_light():
    code = (
        "import sys, featurestore; "
        "heavy = {'fastapi', 'uvicorn', 'redis', 'great_expectations', 'pandas', 'starlette', "
        "'pydantic'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_is_a_featurestore_error():
    from featurestore import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Warning):
            assert issubclass(obj, errors.FeatureStoreWarning), name
        elif isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.FeatureStoreError), name


ENGINES = ("duckdb", "polars", "pyarrow", "numpy", "pandas")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_import_featurestore_loads_no_engine():
    assert _modules_after("import featurestore").isdisjoint(ENGINES)


def test_defining_features_loads_no_engine():
    code = (
        "from featurestore import Entity, FeatureView, Field, ParquetSource\n"
        "from featurestore.types import Float64, Int64\n"
        "user = Entity('user', join_keys=['user_id'])\n"
        "FeatureView(name='v', entities=[user], source=ParquetSource(path='x.parquet',"
        " timestamp_field='ts'), schema=[Field('f', Float64), Field('n', Int64)])"
    )
    assert _modules_after(code).isdisjoint(ENGINES)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["get-online", "--help"]])
def test_cli_version_and_help_load_no_engine(argv):
    code = (
        "import contextlib, io, sys\n"
        f"sys.argv = ['featurestore', *{argv!r}]\n"
        "from featurestore.cli.main import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main()"
    )
    assert _modules_after(code).isdisjoint(ENGINES)


def test_lazy_names_are_the_defining_modules_objects():
    from featurestore.offline.training_frame import TrainingFrame
    from featurestore.store import FeatureStore

    assert featurestore.FeatureStore is FeatureStore
    assert featurestore.TrainingFrame is TrainingFrame
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = featurestore.Nope  # type: ignore[attr-defined]


def test_result_types_are_exported_and_share_the_frame_protocol():
    results = {"TrainingFrame", "OnDemandTrainingFrame", "OnlineResponse"}
    assert results | {"Frame"} <= set(featurestore.__all__)
    for name in sorted(results):
        cls = getattr(featurestore, name)
        for method in ("to_arrow", "to_polars", "to_pandas"):
            assert callable(getattr(cls, method, None)), f"{name}.{method}"
