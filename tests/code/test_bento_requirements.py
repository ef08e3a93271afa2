"""The bento installs what the tests run on: every runtime package at the version constraints.txt pins."""

from __future__ import annotations

import importlib.metadata
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipelines.config import PROJECT_ROOT
from serving.bento import LOCK, pinned_versions, requirements_path, requirements_text


def test_the_bento_requirements_are_generated_from_the_current_lock_and_pyproject():
    assert requirements_path().read_text() == requirements_text(), "out of date: run `make lock`"


def test_the_bento_pins_each_package_as_the_lock_and_the_tested_install_do():
    bento = pinned_versions(requirements_path().read_text())
    lock = pinned_versions(LOCK.read_text())
    differ = {}
    for name, (_, version) in bento.items():
        locked = lock[name][1] if name in lock else None
        installed = importlib.metadata.version(name)
        if not version == locked == installed:
            differ[name] = {"bento": version, "constraints.txt": locked, "installed": installed}
    assert not differ, differ


def test_the_bento_installs_every_runtime_dependency_of_pyproject_within_its_range():
    bento = pinned_versions(requirements_path().read_text())
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    for dependency in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dependency.name)
        assert name in bento, f"the bento does not install {dependency.name}"
        assert dependency.specifier.contains(bento[name][1]), f"{bento[name]} is outside pyproject's {dependency}"


def test_the_bento_installs_the_postgresql_driver_its_store_and_sql_sources_are_tested_on():
    """serving.store_url `postgresql+psycopg://...` (and a data.sql_url so) needs psycopg, which SQLAlchemy
    imports when it makes the engine: as a dev extra only, a deployed bento had no driver for such a store."""
    bento = pinned_versions(requirements_path().read_text())
    assert {"psycopg", "psycopg-binary"} <= bento.keys()
