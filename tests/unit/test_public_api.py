from __future__ import annotations

import subprocess
import sys

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
        "heavy = {'fastapi', 'uvicorn', 'redis', 'great_expectations', 'pandas', 'starlette'}; "
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
