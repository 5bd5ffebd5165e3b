from pathlib import Path

import pytest

from itchflow.codeversion import StaleCodeError, check_loaded, source_fingerprint


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_fingerprint_follows_contents_and_paths_of_python_files_only(tmp_path: Path) -> None:
    write(tmp_path, "pkg/a.py", "x = 1\n")
    write(tmp_path, "pkg/sub/b.py", "y = 2\n")
    first = source_fingerprint(tmp_path, ("pkg",))
    assert source_fingerprint(tmp_path, ("pkg",)) == first
    write(tmp_path, "pkg/notes.txt", "not code")
    assert source_fingerprint(tmp_path, ("pkg",)) == first
    write(tmp_path, "pkg/sub/b.py", "y = 3\n")
    changed = source_fingerprint(tmp_path, ("pkg",))
    assert changed != first
    (tmp_path / "pkg/sub/b.py").rename(tmp_path / "pkg/sub/c.py")
    assert source_fingerprint(tmp_path, ("pkg",)) not in (first, changed)


def test_stale_code_is_refused_with_what_to_do() -> None:
    check_loaded("abc", loaded="abc")
    with pytest.raises(StaleCodeError, match="Restart the TaskManagers"):
        check_loaded("abc", loaded="def")
