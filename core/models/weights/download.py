"""Downloads from the declared sources (URL, Hugging Face Hub, Google Drive), streamed to ``.part`` files that are
renamed only after the size and checksum match; offline mode refuses at once.
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core import archive, settings
from core.errors import DownloadError, WeightsCorrupt, WeightsError, WeightsUnavailable
from core.models.specs import DetectorSpec, WeightSource, WeightsSpec
from core.models.weights.store import (CHUNK, Progress, check_digest, how_to_fix, installed_path,
                                       part_spec, remember_written, remove_quietly, write_sidecar)


def download_url(url: str, dest: str | Path, *, sha256: str | None = None, size: int | None = None,
                 progress: Progress | None = None, detector: str = "download") -> str:
    """Stream ``url`` to ``dest``, hashing while writing; nothing is left at ``dest`` on any failure.

    The file is written to ``dest.part`` in the same folder and atomically renamed only after the length and
    checksum match.

    Returns:
        The sha256 of the written file.

    Raises:
        DownloadError: offline, HTTP error, timeout or interrupted transfer.
        WeightsCorrupt: checksum or size mismatch (the file is deleted).
    """
    import requests

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(detector, f"cannot write to the weights folder {dest.parent} ({exc.strerror}).",
                            path=str(dest)) from None
    h = hashlib.sha256()
    done = 0
    try:
        with requests.get(url, stream=True, timeout=(settings.connect_timeout(), settings.read_timeout()), allow_redirects=True) as r:
            if r.status_code != 200:
                raise DownloadError(detector, f"download of {url} failed: HTTP {r.status_code} {r.reason}.",
                                    path=str(dest))
            total = int(r.headers["Content-Length"]) if r.headers.get("Content-Length", "").isdigit() else size
            if total is not None and total > settings.max_checkpoint_bytes():
                raise DownloadError(detector, f"{url} is {total} bytes, above the checkpoint size limit.",
                                    path=str(dest))
            with open(part, "wb") as f:
                for chunk in r.iter_content(CHUNK):
                    if not chunk:
                        continue
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if done > settings.max_checkpoint_bytes():
                        raise DownloadError(detector, f"{url} exceeds the checkpoint size limit.", path=str(dest))
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise DownloadError(detector, f"download of {url} was interrupted ({done} of {total} bytes).",
                                    path=str(dest))
    except WeightsError:
        remove_quietly(part)
        raise
    except requests.exceptions.ConnectionError as exc:
        remove_quietly(part)
        reason = "no network connection" if "resolve" in str(exc).lower() or "Name" in str(exc) else \
            "the connection failed or was interrupted"
        raise DownloadError(detector, f"download of {url} failed: {reason}.", path=str(dest)) from None
    except requests.exceptions.RequestException as exc:
        remove_quietly(part)
        raise DownloadError(detector, f"download of {url} failed ({type(exc).__name__}).", path=str(dest)) from None
    except OSError as exc:
        remove_quietly(part)
        raise DownloadError(detector, f"cannot write {dest} ({exc.strerror or exc}).", path=str(dest)) from None
    digest = h.hexdigest()
    if size is not None and done != size:
        remove_quietly(part)
        raise WeightsCorrupt(detector, f"downloaded {done} bytes from {url}, expected {size}; file removed.",
                             path=str(dest))
    if sha256 is not None and digest != sha256:
        remove_quietly(part)
        raise WeightsCorrupt(detector, f"downloaded file from {url} has sha256 {digest[:16]}…, expected "
                                       f"{sha256[:16]}… (checksum mismatch); file removed.", path=str(dest))
    os.replace(part, dest)
    remember_written(dest, digest)          # hashed while we wrote it: no second 1.7 GB read
    return digest


def download(spec: DetectorSpec, *, part: str = "weights", weights_dir: str | Path | None = None,
             progress: Progress | None = None) -> Path:
    """Fetch a checkpoint from its declared remote sources, in order, and verify it.

    URL and Google Drive files land in the weights folder; Hub files stay in the normal Hub cache.

    Raises:
        DownloadError / WeightsUnavailable: every source failed (the message lists each reason).
        WeightsCorrupt: a downloaded file failed verification (it was removed).
    """
    ws = part_spec(spec, part)
    tried: list[str] = []
    dest = installed_path(spec, part, weights_dir)
    remote = [s for s in ws.sources if s.type in ("url", "hf", "gdrive")]
    if not remote:
        raise WeightsUnavailable(spec.id, [s.describe() for s in ws.sources], how_to_fix(spec, part),
                                 what="this checkpoint cannot be downloaded on its own")
    if settings.offline():
        raise DownloadError(spec.id, "downloads are disabled (offline mode: HF_HUB_OFFLINE / "
                                     "DEEPFAKE_LENS_OFFLINE is set).", how_to_fix=how_to_fix(spec, part))
    for src in remote:
        unreachable = _unreachable(_host_url(src))
        if unreachable:
            tried.append(unreachable)              # fail fast: no retries against a host that cannot answer
            continue
        try:
            if src.type == "url":
                if src.member:                         # the checkpoint is one member of a zip (B-Free)
                    digest = _download_zip_member(spec, ws, src, dest, progress)
                else:
                    digest = download_url(src.url, dest, sha256=ws.sha256, size=ws.size, progress=progress,
                                          detector=spec.id)
                    check_digest(spec, ws, dest)
                write_sidecar(dest, digest, src.describe())
                return dest
            if src.type == "hf":
                return _download_hf(spec, ws, src, progress)
            if src.type == "gdrive":
                _download_gdrive(spec, ws, src, dest)
                return dest
        except WeightsCorrupt:
            raise
        except WeightsError as exc:
            tried.append(_sentence(exc))
    raise DownloadError(spec.id, f"could not download {ws.file}: " + "; ".join(t.rstrip(".") for t in tried) + ".",
                        how_to_fix=how_to_fix(spec, part))


def _sentence(exc: WeightsError) -> str:
    """The reason in ``exc`` without its ``ID: `` prefix and how-to-fix tail (the final error adds both once)."""
    text = str(exc).removeprefix(f"{exc.detector}: ")
    return text[: -len(exc.how_to_fix)].rstrip() if exc.how_to_fix and text.endswith(exc.how_to_fix) else text


def _host_url(src: WeightSource) -> str:
    """The address a source downloads from (the Hub's endpoint may be a mirror: ``HF_ENDPOINT``)."""
    if src.type == "hf":
        return settings.hf_endpoint() or "https://huggingface.co"
    if src.type == "gdrive":
        return "https://drive.google.com"
    return src.url or ""


def _unreachable(url: str) -> str | None:
    """None when the host of ``url`` accepts a connection within the connect timeout, else one sentence.

    Checked before each source so an offline machine fails in about a second with a clear reason, instead of
    waiting through a client library's retries (huggingface_hub retried for 23 s here).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=settings.connect_timeout()).close()
    except socket.gaierror:
        return f"{host} cannot be reached (no network connection, or its name does not resolve here)"
    except ConnectionRefusedError:
        return f"{host} cannot be reached (it refused the connection)"
    except TimeoutError:
        return f"{host} cannot be reached (no answer within {settings.connect_timeout():.0f} s; a firewall or proxy?)"
    except OSError as exc:
        return f"{host} cannot be reached ({(exc.strerror or type(exc).__name__).lower()})"
    return None


def _download_zip_member(spec: DetectorSpec, ws: WeightsSpec, src: WeightSource, dest: Path,
                         progress: Progress | None) -> str:
    """Fetch the zip at ``src.url`` beside ``dest``, check the md5 its authors publish for the whole archive, then
    extract only ``src.member`` (core.archive's member checks and size limit) and verify it as the checkpoint.
    The zip never stays in the weights folder; ``dest`` appears only once everything matched.

    Returns:
        The sha256 of the installed checkpoint.
    """
    shown = src.url.rsplit("/", 1)[-1] or src.url
    zpath, part = dest.with_name(dest.name + ".zip"), dest.with_name(dest.name + ".part")
    try:
        download_url(src.url, zpath, progress=progress, detector=spec.id)
        if src.archive_md5:
            md5 = hashlib.md5(usedforsecurity=False)
            with open(zpath, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    md5.update(chunk)
            if md5.hexdigest() != src.archive_md5.lower():
                raise WeightsCorrupt(spec.id, f"downloaded {shown} has md5 {md5.hexdigest()}, expected "
                                              f"{src.archive_md5} (checksum mismatch); file removed.", path=str(dest))
        limit = settings.max_checkpoint_bytes()
        with archive.open_zip(zpath, shown) as zf:
            found = [m for m in archive.check_members(zf.infolist(), max_member_bytes=limit) if m.name == src.member]
            if not found:
                raise WeightsCorrupt(spec.id, f"{shown} holds no member {src.member}.", path=str(dest))
            with open(part, "wb") as out:
                archive.copy_member(zf, found[0], out, limit, shown)
        digest = check_digest(spec, ws, part, fresh=True, name=f"{shown}: {src.member}")
        os.replace(part, dest)
    except archive.ArchiveError as exc:
        raise WeightsCorrupt(spec.id, str(exc), path=str(dest)) from None
    except OSError as exc:
        raise DownloadError(spec.id, f"cannot write {dest} ({exc.strerror or exc}).", path=str(dest)) from None
    finally:
        remove_quietly(zpath)
        remove_quietly(part)
    remember_written(dest, digest)
    return digest


def _forwarding_bar(progress: Progress) -> type:
    """A tqdm class that draws nothing and hands the Hub's byte counts to ``progress`` (one bar per file: ours)."""
    from tqdm import tqdm

    class _Forward(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)                 # huggingface_hub's own keyword, unknown to tqdm
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            progress(self._done, self.total)
            return None

    return _Forward


def _download_hf(spec: DetectorSpec, ws: WeightsSpec, src: WeightSource, progress: Progress | None = None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    try:
        # endpoint read at call time so HF_ENDPOINT (mirrors, the tests' local server) applies per call
        p = Path(hf_hub_download(repo_id=src.repo_id, filename=src.filename, revision=src.revision,
                                 etag_timeout=settings.connect_timeout(), endpoint=settings.hf_endpoint(),
                                 tqdm_class=_forwarding_bar(progress) if progress else None))
    except LocalEntryNotFoundError:
        raise DownloadError(spec.id, f"{src.describe()} is not reachable (offline?) and not cached.") from None
    except HfHubHTTPError as exc:
        raise DownloadError(spec.id, f"{src.describe()} failed ({str(exc).splitlines()[0][:160]}).") from None
    except (OSError, ValueError) as exc:
        raise DownloadError(spec.id, f"{src.describe()} failed ({type(exc).__name__}: {str(exc)[:160]}).") from None
    check_digest(spec, ws, p)
    return p


def _download_gdrive(spec: DetectorSpec, ws: WeightsSpec, src: WeightSource, dest: Path) -> None:
    import gdown
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        out = gdown.download(id=src.id, output=str(part), quiet=True)
    except Exception as exc:  # noqa: BLE001 - gdown raises many types; all mean "not downloaded"
        remove_quietly(part)
        raise DownloadError(spec.id, f"{src.describe()} failed ({type(exc).__name__}).") from None
    if not out or not part.is_file():
        remove_quietly(part)
        raise DownloadError(spec.id, f"{src.describe()} failed (no file received).")
    try:
        digest = check_digest(spec, ws, part)
    except WeightsCorrupt:
        remove_quietly(part)
        raise
    os.replace(part, dest)
    remember_written(dest, digest)
    write_sidecar(dest, digest, src.describe())


