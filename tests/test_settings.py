"""``revelo.settings``: the data folder's default, its environment override and the setter."""

from __future__ import annotations

from pathlib import Path

import pytest

from revelo._settings import RevelosSettings


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.delenv("REVELO_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return RevelosSettings()


def test_data_dir_defaults_to_the_user_cache(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fresh.data_dir == tmp_path / ".cache" / "revelo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fresh.data_dir == tmp_path / "xdg" / "revelo"


def test_data_dir_ignores_the_working_directory(fresh, monkeypatch, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert "shared" not in fresh.data_dir.parts


def test_environment_variable_wins_over_the_default(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("REVELO_DATA_DIR", str(tmp_path))
    assert fresh.data_dir == tmp_path


def test_set_value_wins_and_none_restores(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("REVELO_DATA_DIR", str(tmp_path / "env"))
    fresh.data_dir = tmp_path / "mine"
    assert fresh.data_dir == tmp_path / "mine"
    fresh.data_dir = None
    assert fresh.data_dir == Path(tmp_path / "env")
