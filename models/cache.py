"""The local model cache: the champion verified on disk, a backup copy, and serving through S3 outages.

Layout under ``directory``::

    versions/{version}/model.onnx, manifest.json, manifest.sig   the working copy
    backup/{version}/...                                          an independent copy
    champion.json                                                 the last champion verified here

Every load verifies (signature, then sha256) before returning bytes. A corrupt
working copy is restored from the backup, or re-fetched from S3 when the backup
is bad too. With S3 unreachable, or the registry's champion failing verification,
the last verified champion keeps being served and the result says so; with
nothing usable, ``CacheLoad.model`` is ``None`` and the caller uses the rule policy.
A champion alias that fails its own signature (re-pointed without the key, signed
with another key, unsigned) is ``CacheLoad.alias_refused``: an attack or a broken
registry, not an outage, which the caller reports as such.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from models.errors import ModelRegistryError, ModelVerificationError
from models.manifest import Manifest, check_safe_name
from models.registry import ModelRegistry, SignedModel
from models.store import ARTIFACT_FILE, MANIFEST_FILE, SIGNATURE_FILE

SOURCE_CACHE: Final = "cache"
SOURCE_BACKUP: Final = "backup"
SOURCE_S3: Final = "s3"
_PARTS: Final = (ARTIFACT_FILE, MANIFEST_FILE, SIGNATURE_FILE)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedModel:
    artifact: bytes
    manifest: Manifest
    source: str  # cache, backup (working copy was restored from it) or s3

    @property
    def version(self) -> str:
        return self.manifest.version


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheLoad:
    """The outcome of ``ModelCache.load``: a verified model or ``None``, and what happened, in words."""

    model: VerifiedModel | None
    reason: str
    degraded: bool = False  # True when not serving what the registry names (S3 down, champion unverifiable)
    alias_refused: bool = False  # True when the champion alias itself failed verification (see the module doc)


class _Unusable(Exception):
    pass


class ModelCache:
    def __init__(self, directory: Path, registry: ModelRegistry) -> None:
        self.directory = Path(directory)
        self.registry = registry

    def _dir(self, area: str, version: str) -> Path:
        return self.directory / area / check_safe_name("version", version)

    @property
    def _champion_file(self) -> Path:
        return self.directory / "champion.json"

    def cached_champion(self) -> str | None:
        """The last champion verified and stored here, if any."""
        try:
            return str(json.loads(self._champion_file.read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def mark_champion(self, version: str) -> None:
        """Record ``version`` (already loaded and verified here) as the champion this cache serves."""
        self._write_json(self._champion_file, {"version": check_safe_name("version", version)})

    def load(self, version: str | None = None) -> CacheLoad:
        """The given version, or the registry's champion, verified; see the module doc for fallbacks."""
        if version is not None:
            try:
                model, how = self._load_version(version, use_s3=True)
            except _Unusable as exc:
                return CacheLoad(model=None, reason=str(exc), degraded=True)
            return CacheLoad(model=model, reason=how)
        try:
            target = self.registry.champion()
        except ModelVerificationError as exc:  # the alias is not what the key signed
            refused = self._serve_cached(f"champion alias refused ({exc})")
            return replace(refused, alias_refused=True)
        except ModelRegistryError as exc:  # S3 unreachable (RegistryUnavailable) or refusing
            return self._serve_cached(f"registry unavailable ({exc})")
        if target is None:
            return self._serve_cached(f"registry has no champion for {self.registry.model_name}")
        try:
            model, how = self._load_version(target, use_s3=True)
        except _Unusable as exc:
            return self._serve_cached(f"champion {target} unusable: {exc}", exclude=target)
        self._write_json(self._champion_file, {"version": target})
        return CacheLoad(model=model, reason=f"champion {how}")

    def _serve_cached(self, problem: str, *, exclude: str | None = None) -> CacheLoad:
        cached = self.cached_champion()
        if cached is None or cached == exclude:
            return CacheLoad(
                model=None, reason=f"{problem}; no verified champion cached, use the rule policy", degraded=True
            )
        try:
            model, how = self._load_version(cached, use_s3=False)
        except _Unusable as exc:
            return CacheLoad(
                model=None,
                reason=f"{problem}; cached champion unusable too ({exc}), use the rule policy",
                degraded=True,
            )
        return CacheLoad(model=model, reason=f"{problem}; serving cached champion {how}", degraded=True)

    def _load_version(self, version: str, *, use_s3: bool) -> tuple[VerifiedModel, str]:
        notes: list[str] = []
        try:
            artifact, manifest = self._read_verified("versions", version)
        except FileNotFoundError:
            notes.append(f"{version} not cached")
        except ModelVerificationError as exc:
            notes.append(f"cached {version} corrupt ({exc})")
        else:
            return VerifiedModel(
                artifact=artifact, manifest=manifest, source=SOURCE_CACHE
            ), f"{version} from local cache"
        try:
            artifact, manifest = self._read_verified("backup", version)
        except (FileNotFoundError, ModelVerificationError) as exc:
            notes.append("backup missing" if isinstance(exc, FileNotFoundError) else f"backup corrupt ({exc})")
        else:
            self._copy("backup", "versions", version)
            return VerifiedModel(artifact=artifact, manifest=manifest, source=SOURCE_BACKUP), "; ".join(
                [*notes, "restored from backup"]
            )
        if not use_s3:
            raise _Unusable("; ".join(notes))
        try:
            signed = self.registry.fetch_signed(version)
        except (ModelRegistryError, ModelVerificationError) as exc:
            raise _Unusable("; ".join([*notes, f"S3 fetch failed ({exc})"])) from exc
        self._store(signed)
        return VerifiedModel(artifact=signed.artifact, manifest=signed.manifest, source=SOURCE_S3), "; ".join(
            [*notes, "fetched from S3"]
        )

    def _read_verified(self, area: str, version: str) -> tuple[bytes, Manifest]:
        folder = self._dir(area, version)
        if not (folder / MANIFEST_FILE).exists():
            raise FileNotFoundError(folder / MANIFEST_FILE)
        data = {part: _read_or_none(folder / part) for part in _PARTS}
        manifest = self.registry.verify_local(data[ARTIFACT_FILE], data[MANIFEST_FILE], data[SIGNATURE_FILE], version)
        artifact = data[ARTIFACT_FILE]
        assert artifact is not None
        return artifact, manifest

    def _store(self, signed: SignedModel) -> None:
        version = signed.manifest.version
        contents = {
            ARTIFACT_FILE: signed.artifact,
            MANIFEST_FILE: signed.manifest_bytes,
            SIGNATURE_FILE: signed.signature_bytes,
        }
        for area in ("versions", "backup"):
            folder = self._dir(area, version)
            folder.mkdir(parents=True, exist_ok=True)
            for part in (ARTIFACT_FILE, SIGNATURE_FILE, MANIFEST_FILE):  # manifest last: it marks a complete copy
                _write_atomic(folder / part, contents[part])

    def _copy(self, src_area: str, dst_area: str, version: str) -> None:
        src, dst = self._dir(src_area, version), self._dir(dst_area, version)
        dst.mkdir(parents=True, exist_ok=True)
        for part in (ARTIFACT_FILE, SIGNATURE_FILE, MANIFEST_FILE):
            _write_atomic(dst / part, (src / part).read_bytes())

    def _write_json(self, path: Path, doc: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps(doc, sort_keys=True).encode())

    def cached_versions(self) -> list[str]:
        found: set[str] = set()
        for area in ("versions", "backup"):
            folder = self.directory / area
            if folder.is_dir():
                found.update(p.name for p in folder.iterdir() if p.is_dir())
        return sorted(found)

    def cleanup(self, keep: int = 2) -> list[str]:
        """Remove all but the ``keep`` newest cached versions (never the cached champion); return the removed."""
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        versions = self.cached_versions()
        champion = self.cached_champion()
        kept = set(versions[-keep:]) | ({champion} if champion else set())
        removed = [v for v in versions if v not in kept]
        for version in removed:
            for area in ("versions", "backup"):
                shutil.rmtree(self.directory / area / version, ignore_errors=True)
        return removed


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
