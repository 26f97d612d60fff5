"""Atomic writes: ``write_atomic`` replaces, ``write_new`` never does, even without hard links."""

import os

import pytest

from atelier.atomic import write_atomic, write_new


def test_write_new_refuses_an_existing_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.png"
    write_new(target, b"first")
    with pytest.raises(FileExistsError):
        write_new(target, b"second")
    assert target.read_bytes() == b"first"
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_write_new_without_hard_links_still_never_replaces(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")  # what FAT file systems answer

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "a.png"
    write_new(target, b"first")
    with pytest.raises(FileExistsError):
        write_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
