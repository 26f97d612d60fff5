"""The npm helper: safe unpacking (no traversal, links or bombs; nothing left behind), copies
given with --package, and the errors when npm is missing, fails or hangs. No network: npm is
either absent from PATH or a stub script."""

import os
import stat
from pathlib import Path

import pytest

from atelier.data import npm
from atelier.data.npm import NpmError, NpmPackage, PackageError, open_package, unpack
from tests.data.fakes import package_tarball, tarball

MANIFEST = b'{"name": "toy", "version": "1.0.0"}'
TOY = NpmPackage(name="toy", version="1.0.0", integrity="sha512-none",
                 keep=("package.json", "data/*.json"), max_bytes=10_000)  # fmt: skip


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))


def good_members(*extra):
    return [("package/package.json", "file", MANIFEST),
            ("package/data", "dir", ""),
            ("package/data/a.json", "file", b"[1]"),
            ("package/README.md", "file", b"not kept"), *extra]  # fmt: skip


def test_unpack_keeps_the_wanted_members_under_the_top_folder(tmp_path):
    out = unpack(tarball(tmp_path / "t.tgz", good_members()), tmp_path / "out", TOY)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "data/a.json", "package.json"]  # fmt: skip


@pytest.mark.parametrize(
    "member",
    [
        ("package/../evil.json", "file", b"x"),
        ("/etc/evil.json", "file", b"x"),
        ("package/data/../../evil.json", "file", b"x"),
        ("other/data/b.json", "file", b"x"),
        ("package/data/link.json", "symlink", "/etc/passwd"),
        ("package/data/hard.json", "hardlink", "package/package.json"),
        ("package/data/a.json", "file", b"twice"),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "second-top", "symlink", "hardlink", "duplicate"],
)
def test_unsafe_tarballs_are_refused_whole_and_leave_nothing(tmp_path, member):
    source = tarball(tmp_path / "t.tgz", good_members(member))
    with pytest.raises(PackageError, match="refusing the whole package"):
        unpack(source, tmp_path / "cache" / "out", TOY)
    assert list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "evil.json").exists()


def test_size_bounds_are_enforced(tmp_path, monkeypatch):
    big = ("package/data/big.json", "file", b"0" * 20_000)
    with pytest.raises(PackageError, match="more than 10000 bytes"):
        unpack(tarball(tmp_path / "a.tgz", good_members(big)), tmp_path / "a", TOY)
    monkeypatch.setattr(npm, "MAX_MEMBERS", 3)
    with pytest.raises(PackageError, match="more than 3 members"):
        unpack(tarball(tmp_path / "b.tgz", good_members()), tmp_path / "b", TOY)


def test_a_corrupt_tarball_and_a_wrong_package_are_named(tmp_path):
    (tmp_path / "bad.tgz").write_bytes(b"not gzip at all")
    with pytest.raises(PackageError, match="not a readable .tgz"):
        unpack(tmp_path / "bad.tgz", tmp_path / "x", TOY)
    other = [("package/package.json", "file", b'{"name": "other"}')]
    with pytest.raises(PackageError, match="names package 'other', not 'toy'"):
        unpack(tarball(tmp_path / "o.tgz", other), tmp_path / "y", TOY)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_package_copies_as_folders_or_tarballs(tmp_path):
    source = tmp_path / "src" / "package"
    (source / "data").mkdir(parents=True)
    (source / "package.json").write_bytes(MANIFEST)
    assert open_package(TOY, source) == source
    assert open_package(TOY, source.parent) == source  # the folder holding package/
    unpacked = open_package(TOY, package_tarball(tmp_path / "toy.tgz", source))
    assert unpacked.parent == npm.cache_root() and (unpacked / "package.json").is_file()
    with pytest.raises(PackageError, match="no package at"):
        open_package(TOY, tmp_path / "missing.tgz")
    with pytest.raises(PackageError, match="no package.json"):
        open_package(TOY, tmp_path)


def test_missing_npm_says_how_to_work_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(NpmError, match="npm is not on PATH.*--package"):
        open_package(TOY)


def stub_npm(folder: Path, body: str) -> None:
    folder.mkdir(exist_ok=True)
    script = folder / "npm"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_npm_failing_offline_or_hanging_is_an_npm_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    stub_npm(bin_dir, "echo 'npm error code ENOTFOUND' >&2; exit 1")
    with pytest.raises(NpmError, match=r"unreachable \(offline\?\).*ENOTFOUND.*--package"):
        open_package(TOY)
    stub_npm(bin_dir, "exec sleep 30")
    with pytest.raises(NpmError, match="did not finish in 1 s"):
        open_package(TOY, timeout=1)
    assert not any(npm.cache_root().glob("toy*"))


def test_a_tarball_with_another_integrity_is_refused(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    # npm pack ... --pack-destination DIR: the stub writes a tarball that is not the pinned one.
    stub_npm(bin_dir, 'for last; do :; done; echo tampered > "$last/toy-1.0.0.tgz"')
    with pytest.raises(PackageError, match="not the pinned sha512-none"):
        open_package(TOY)
    assert not any(npm.cache_root().glob("toy*"))
