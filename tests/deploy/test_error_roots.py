"""One root exception per package: ``except ModelStoreError`` (StreamError, ApiError)
catches every error that package raises on purpose."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import api
import model_store
import stream
from api.errors import ApiError
from model_store.errors import ModelStoreError
from stream.errors import StreamError

MARKERS = {"stream.decoding.LabelOnly"}  # a value in a decoded batch, not an error


@pytest.mark.parametrize(
    ("package", "root"), [(model_store, ModelStoreError), (stream, StreamError), (api, ApiError)]
)
def test_every_error_a_package_defines_derives_from_its_root(package, root):
    found = []
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and f"{info.name}.{obj.__name__}" not in MARKERS
            ):
                found.append(obj)
                assert issubclass(obj, root), (
                    f"{info.name}.{obj.__name__} does not derive from {root.__name__}"
                )
    assert found  # the scan saw the package's errors
