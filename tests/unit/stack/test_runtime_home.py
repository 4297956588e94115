"""``demo --fresh`` deletes the runtime directory only when it is psmesh's: a mistaken PSMESH_HOME loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import psmesh.demo
from psmesh.cli import main
from psmesh.stack.exceptions import StackError
from psmesh.stack.home import RUNTIME_ENTRIES, remove_runtime_dir, runtime_dir_problem

REPO = Path(__file__).resolve().parents[3]


def _runtime_dir(path: Path) -> Path:
    for name in ("kafka", "pg", "logs", "run", "cdc", "processors"):
        (path / name).mkdir(parents=True)
    (path / "logs" / "kafka.log").write_text("…")
    return path


def test_a_runtime_directory_psmesh_made_is_deleted(tmp_path):
    home = _runtime_dir(tmp_path / ".psmesh")
    (home / ".lock").touch()
    assert remove_runtime_dir(home, protected=[tmp_path / "repo"]) is True
    assert not home.exists()
    assert remove_runtime_dir(home, protected=[]) is False  # nothing there: nothing to do


def test_a_directory_with_anything_else_in_it_is_refused_and_kept(tmp_path):
    home = _runtime_dir(tmp_path / "me")
    (home / ".bashrc").write_text("alias ll='ls -l'\n")
    with pytest.raises(StackError, match=r"does not look like a psmesh runtime directory: it holds \.bashrc"):
        remove_runtime_dir(home, protected=[])
    assert (home / ".bashrc").exists() and (home / "kafka").is_dir()


def test_the_repository_and_its_parents_are_never_deleted(tmp_path):
    repository = tmp_path / "work" / "repo"
    repository.mkdir(parents=True)
    for home in (repository, tmp_path / "work", tmp_path):
        assert "which psmesh never deletes" in runtime_dir_problem(home, protected=[repository])
        with pytest.raises(StackError):
            remove_runtime_dir(home, protected=[repository])
    assert repository.is_dir()


def test_the_real_repository_the_users_home_and_the_root_are_protected_by_default():
    for home in (REPO, REPO.parent, Path.home(), Path("/")):
        assert "which psmesh never deletes" in runtime_dir_problem(home)


def test_what_psmesh_creates_in_its_home_is_known():
    assert {"kafka", "pg", "logs", "run", "cdc", "processors"} <= RUNTIME_ENTRIES


def test_demo_fresh_with_a_mistaken_home_exits_1_before_stopping_or_deleting_anything(tmp_path, monkeypatch):
    home = tmp_path / "me"
    home.mkdir()
    (home / "thesis.tex").write_text("\\documentclass{article}\n")
    stopped = []

    class Stack:
        def __init__(self, settings):
            pass

        def down(self):
            stopped.append(True)
            return {}

    monkeypatch.setattr(psmesh.demo, "LocalStack", Stack)
    monkeypatch.setattr(psmesh.demo, "_run", lambda *args: pytest.fail("the demo ran"))
    result = CliRunner().invoke(main, ["demo", "--fresh"], env={"PSMESH_HOME": str(home)})
    assert result.exit_code == 1
    assert f"--fresh: not deleting {home} (PSMESH_HOME)" in result.output
    assert "thesis.tex" in result.output
    assert (home / "thesis.tex").exists() and not stopped
