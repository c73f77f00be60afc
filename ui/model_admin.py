"""Models page helpers: imports from uploads or from a path inside the server's data folder, messages that survive
the rerun that refreshes the status table, delete with a confirmation, and "download all".

Server paths exist only when ``DEEPFAKE_LENS_DATA_ROOT`` is set (:func:`core.settings.data_root`), and every path
is confined to that folder after resolving ``..`` and symbolic links, so the page can never read elsewhere on the
server. Uploads go through a private temporary file; their names are used for messages only, never as paths.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core import archive, settings
from core.errors import DeepfakeLensError
from core.models import install
from core.models import weights as W
from core.models.selection import DownloadItem, download_plan
from core.models.specs import DetectorSpec
from ui.status import source_name

FLASH = "models.flash"              # messages kept across the rerun that refreshes the status table
CONFIRM = "models.confirm_delete"   # (ID:variant, part) waiting for the analyst's confirmation


class PathRefused(DeepfakeLensError):
    """A server path the page may not read (no data folder configured, outside it, or not there)."""


def data_root() -> Path | None:
    """The one server folder the page may read, or None when server paths are off."""
    return settings.data_root()


def confined_path(text: str) -> Path:
    """Resolve a user-typed server path (relative ones start at the data folder) and keep it inside that folder.

    Raises:
        PathRefused: one sentence; a path outside the folder is refused before anything is checked about it.
    """
    root = data_root()
    if root is None:
        raise PathRefused("Server paths are off: set DEEPFAKE_LENS_DATA_ROOT to the folder the app may read.")
    try:
        base = root.expanduser().resolve(strict=True)
        raw = Path(text.strip()).expanduser()
        real = (raw if raw.is_absolute() else base / raw).resolve()
    except (OSError, RuntimeError, ValueError):
        raise PathRefused("That path cannot be used: give a file or folder inside the data folder.") from None
    if real != base and base not in real.parents:
        raise PathRefused(f"That path is outside the data folder this server may read ({base}).")
    if not real.exists():
        raise PathRefused(f"{archive.printable(text.strip())}: not found in the data folder.")
    return real


def _stage_upload(upload, tmp: str) -> tuple[Path, str]:  # noqa: ANN001 - a Streamlit UploadedFile
    """Write an upload to a private temp file named only by its suffix; return it and the name to show."""
    name = archive.printable(Path(str(upload.name)).name) or "upload"
    src = Path(tmp) / ("upload" + "".join(Path(name).suffixes[-1:])[:16])
    src.write_bytes(upload.getvalue())
    return src, name


def import_upload(upload, server_path: str, spec: DetectorSpec | None, part: str, *,  # noqa: ANN001
                  custom_name: str | None = None) -> tuple[list[install.ImportReport], list[str]]:
    """Import an uploaded file, or a path inside the data folder; ``spec`` None means the Truebees bundle.

    A ``custom`` variant is imported through :func:`core.models.install.import_custom` with ``custom_name``.

    Returns:
        (reports, notes) like :func:`core.models.install.import_bundle` (a single import gives one report, no notes).

    Raises:
        PathRefused, or the import's own errors (one sentence each).
    """
    with tempfile.TemporaryDirectory(prefix="dl-import-") as tmp:
        if upload is not None:
            src, shown = _stage_upload(upload, tmp)
            source = f"upload {shown}"
        else:
            src = confined_path(server_path)
            shown = source = str(src)
        if spec is None:
            return install.import_bundle(src, shown=shown)
        if spec.variant == install.CUSTOM and part == "weights":
            name = custom_name.strip() if custom_name and custom_name.strip() else None
            return [install.import_custom(src, spec.id, name=name, shown=shown)], []
        return [install.import_file(src, spec, part=part, source=source, shown=shown)], []


# --------------------------------------------------------------------------------------------- messages

def flash(kind: str, title: str, lines: list[str], where: str = "") -> None:
    """Keep a message for the next run (``kind``: success | error | info), shown by ``show_flash(where)`` next to
    the control that caused it; ``lines`` are shown as plain text (they may quote file names)."""
    st.session_state.setdefault(FLASH, []).append((where, kind, title, lines))


def show_flash(where: str = "") -> None:
    """Show, once, the messages kept by :func:`flash` for this place."""
    kept = st.session_state.get(FLASH, [])
    st.session_state[FLASH] = [m for m in kept if m[0] != where]
    for _, kind, title, lines in (m for m in kept if m[0] == where):
        getattr(st, kind)(title)
        if lines:
            st.text("\n".join(lines))


def imported(reports: list[install.ImportReport], notes: list[str], where: str = "") -> None:
    """Keep the outcome of an import and rerun, so the status table above shows the new state at once."""
    for r in reports:
        label = f' as custom "{r.name}"' if r.name else ""
        flash("success", f"Installed {r.key}.", [f"{r.key}{label} from {r.source} → {r.path}", f"sha256 {r.sha256}"],
              where)
    if notes:
        flash("info" if reports else "error", "Notes on the import:" if reports else "Nothing imported.", notes, where)
    st.rerun()


# --------------------------------------------------------------------------------------------- delete

def delete_button(spec: DetectorSpec, part: str, key: str, column) -> None:  # noqa: ANN001 - a Streamlit column
    """"Delete", then a confirmation naming the file; only "Yes, delete" removes it."""
    target = (spec.key, part)
    if st.session_state.get(CONFIRM) != target:
        if column.button("Delete", key=key + ".del"):
            st.session_state[CONFIRM] = target
            st.rerun()
        return
    path = W.installed_path(spec, part)
    column.warning(f"Delete the {part} of {spec.key}? The file is removed from the weights folder.")
    column.text(str(path))
    yes, no = column.columns(2)
    if yes.button("Yes, delete", key=key + ".del_yes", type="primary"):
        st.session_state.pop(CONFIRM, None)
        removed = W.delete(spec, part)
        flash("success" if removed else "info", f"Deleted the {part} of {spec.key}." if removed else
              f"Nothing to delete for {spec.key} ({part}): it is not in the weights folder.", [], key)
        st.rerun()
    if no.button("Cancel", key=key + ".del_no"):
        st.session_state.pop(CONFIRM, None)
        st.rerun()


# --------------------------------------------------------------------------------------------- download all

def plan_rows(plan: list[DownloadItem]) -> list[dict[str, str]]:
    """The download plan as table rows: what, size, licence, where from (the host; the full address is in each
    detector's section below and in ``python -m core weights download-all``)."""
    return [{"detector": it.spec.key, "part": it.part, "file": it.file, "size": it.size, "licence": it.licence,
             "from": source_name(it.origin)} for it in plan]


def download_all_section() -> None:
    """List every missing checkpoint with its size and licence, then download them one by one, a bar per file."""
    plan = download_plan()
    if not plan:
        st.caption("Every detector that can be downloaded has an installed variant.")
        return
    st.table(pd.DataFrame(plan_rows(plan)).set_index("detector"))     # wraps: no licence is cut off
    st.caption("Read each licence before use: several allow research or non-commercial use only. Bundle-only "
               "variants (truefake) come from the Truebees bundle below.")
    if settings.offline():
        st.info("Downloads are off on this server (offline mode: HF_HUB_OFFLINE or DEEPFAKE_LENS_OFFLINE is set). "
                "Import the files instead.")
        return
    clicked = st.button(f"Download all ({len(plan)} files)", key="models.download_all")
    show_flash("download_all")
    if not clicked:
        return
    done: list[str] = []
    failed: list[str] = []
    for i, it in enumerate(plan, 1):
        bar = st.progress(0.0, text=f"{i}/{len(plan)} {it.spec.key} {it.part}: connecting…")
        try:
            W.download(it.spec, part=it.part, progress=_bar_progress(bar, f"{i}/{len(plan)} {it.spec.key} {it.part}"))
            bar.progress(1.0, text=f"{i}/{len(plan)} {it.spec.key} {it.part}: done")
            done.append(f"{it.spec.key} ({it.part})")
        except DeepfakeLensError as exc:
            bar.progress(0.0, text=f"{i}/{len(plan)} {it.spec.key} {it.part}: failed")
            failed.append(f"{it.spec.key} {it.part}: {_reason(exc)}")
    if done:
        flash("success", f"Downloaded and verified {len(done)} of {len(plan)} file(s).", done, "download_all")
    if failed:
        flash("error", f"{len(failed)} of {len(plan)} download(s) failed. Where this server has no network, import "
                       "the files instead (each detector below says how).", failed, "download_all")
    st.rerun()


def _reason(exc: DeepfakeLensError) -> str:
    """The failure without the detector prefix and the how-to-fix tail (each detector's section says how)."""
    text = str(exc)
    fix = getattr(exc, "how_to_fix", "")
    text = text[: -len(fix)].rstrip() if fix and text.endswith(fix) else text
    det = getattr(exc, "detector", "")
    return text.removeprefix(f"{det}: ") if det else text


def _bar_progress(bar, label: str):  # noqa: ANN001, ANN202 - st.progress element → a Progress callback
    def update(done: int, total: int | None) -> None:
        size = f"{done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else "")
        bar.progress(min(1.0, done / total) if total else 0.0, text=f"{label}: {size}")
    return update


__all__ = ["PathRefused", "confined_path", "data_root", "import_upload", "flash", "show_flash", "imported",
           "delete_button", "plan_rows", "download_all_section"]
