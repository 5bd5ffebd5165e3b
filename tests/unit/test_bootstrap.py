"""Set-up checks that explain themselves: Java version, pinned connector jars."""

import os
import stat
from pathlib import Path

import pytest

from itchflow import bootstrap
from itchflow.errors import UserError


def fake_java(tmp_path: Path, version_line: str) -> Path:
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    java = java_home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java_home


@pytest.mark.parametrize(
    ("line", "major"),
    [('openjdk version "17.0.15" 2025-04-15', 17), ('openjdk version "21" 2023-09-19', 21)],
)
def test_java_17_or_newer_is_accepted(tmp_path, monkeypatch, line: str, major: int) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, line)))
    assert bootstrap.check_java().major == major


@pytest.mark.parametrize("line", ['openjdk version "11.0.2" 2019-01-15', 'java version "1.8.0_292"'])
def test_old_java_is_refused_with_what_to_install(tmp_path, monkeypatch, line: str) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, line)))
    with pytest.raises(UserError, match="Java 17 or newer.*openjdk-17"):
        bootstrap.check_java()


def test_missing_java_is_a_readable_error(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java anywhere
    with pytest.raises(UserError, match="java not found"):
        bootstrap.check_java()


def test_missing_jars_say_how_to_get_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ITCHFLOW_JARS_DIR", str(tmp_path))
    with pytest.raises(UserError, match="itchflow setup"):
        bootstrap.connector_jar_paths()


def test_installed_jars_match_their_pinned_hashes() -> None:
    """The jars set-up extracted are exactly the pinned ones (./dev test runs set-up first)."""
    folder = bootstrap.jars_dir()
    for name, expected in bootstrap.CONNECTOR_JARS.items():
        assert bootstrap.sha256_of(folder / name) == expected, name
    assert os.path.getsize(bootstrap.helpers_jar_path()) > 0
