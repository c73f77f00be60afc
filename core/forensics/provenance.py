"""C2PA (Content Credentials) manifests, validated offline with c2pa-python."""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

from core.forensics.common import _text
from core.forensics.sourcetypes import SourceType, digital_source_types

_C2PA_BYTES = re.compile(rb"jumd[\s\S]{0,24}?c2pa")


@dataclass(frozen=True)
class C2PAInfo:
    """Content Credentials (C2PA) manifest: presence, validation and what it claims."""

    present: bool                        # a C2PA manifest store (JUMBF box labelled c2pa) is in the file
    library: str | None                  # e.g. "c2pa-python 0.38.1"; None when validation is unavailable
    validated: bool                      # the library read and validated the manifest
    validation_state: str | None         # Valid | Invalid | Trusted (library's words) or None
    failures: tuple[str, ...] = ()       # "code: explanation" of each failed check (untrusted signer included)
    claim_generator: str | None = None   # software that made the manifest
    signer: str | None = None            # certificate issuer / common name
    title: str | None = None
    actions: tuple[str, ...] = ()        # c2pa.actions, e.g. "c2pa.created"
    digital_source_types: tuple[SourceType, ...] = ()
    note: str = ""                       # one sentence for the analyst

    def to_dict(self) -> dict[str, Any]:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        d["digital_source_types"] = [s.to_dict() for s in self.digital_source_types]
        return d


def _c2pa_library() -> tuple[Any, str] | None:
    try:
        import c2pa
        return c2pa, f"c2pa-python {getattr(c2pa, '__version__', '?')}"
    except Exception:  # noqa: BLE001 - a broken native library means "unavailable", never a crash
        return None


def read_c2pa(data: bytes, mime: str | None) -> C2PAInfo:
    """Find and (when ``c2pa-python`` is installed) validate a C2PA manifest, offline.

    Network is never used: OCSP and remote-manifest fetching are switched off, so a manifest stored only at a
    remote URL is reported as not found and the signer is not checked against an online trust list.
    """
    present = bool(_C2PA_BYTES.search(data))
    lib = _c2pa_library()
    if lib is None:
        note = ("A C2PA manifest is present, but validation is unavailable (c2pa-python is not installed)."
                if present else "No C2PA manifest (Content Credentials) in the file.")
        return C2PAInfo(present, None, False, None, note=note)
    c2pa, libname = lib
    if not present:
        # every embedded manifest store is a JUMBF box labelled "c2pa" in plain bytes; without one the library
        # would only stream the whole file through Python callbacks (seconds for a large GIF) to find nothing
        return C2PAInfo(False, libname, False, None, note="No C2PA manifest (Content Credentials) in the file.")
    try:
        ctx = c2pa.Context.from_dict({"verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}})
        reader = c2pa.Reader.try_create(mime or "image/jpeg", io.BytesIO(data), context=ctx)
    except Exception as exc:  # noqa: BLE001 - a malformed manifest is evidence too, reported as such
        return C2PAInfo(True, libname, False, "Invalid", failures=(_text(str(exc), 300),),
                        note=f"A C2PA manifest is present but could not be read: {_text(str(exc), 200)}")
    if reader is None:
        return C2PAInfo(True, libname, False, None,
                        note="C2PA-like bytes are present but no readable manifest store was found.")
    with reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
        store = json.loads(reader.json())
    fails = []
    for section in ("activeManifest", "ingredientDeltas"):
        sec = results.get(section) or {}
        items = sec.get("failure", []) if isinstance(sec, dict) else []
        fails += [f"{f.get('code')}: {f.get('explanation', '')}".strip() for f in items]
    fails += [f"{s.get('code')}: {s.get('explanation', '')}" for s in store.get("validation_status", []) or []
              if f"{s.get('code')}: {s.get('explanation', '')}" not in fails]
    gen_info = manifest.get("claim_generator_info") or []
    gen = manifest.get("claim_generator") or ", ".join(
        f"{g.get('name', '')} {g.get('version', '')}".strip() for g in gen_info if isinstance(g, dict)) or None
    sig = manifest.get("signature_info") or {}
    signer = " / ".join(x for x in (sig.get("issuer"), sig.get("common_name")) if x) or None
    actions, dst_text = [], []
    for a in manifest.get("assertions", []) or []:
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions", []) or []:
                actions.append(str(act.get("action")))
                if act.get("digitalSourceType"):
                    dst_text.append(str(act["digitalSourceType"]))
    dst = digital_source_types(" ".join(dst_text), "C2PA")
    only_untrusted = fails and all(f.startswith("signingCredential.untrusted") for f in fails)
    if state == "Trusted":
        note = f"C2PA manifest valid and signed by a trusted signer ({signer})."
    elif state == "Valid" or (state != "Invalid" and only_untrusted):
        note = (f"C2PA manifest present and cryptographically valid (signed by {signer or 'an unknown signer'}); "
                "the signer was not checked against a trust list here.")
    else:
        bad = [f for f in fails if not f.startswith("signingCredential.untrusted")]
        note = (f"C2PA manifest present but INVALID ({'; '.join(bad[:3]) or state}): the file changed after "
                "signing or the manifest is damaged.")
    return C2PAInfo(True, libname, True, state, tuple(fails), gen, signer, manifest.get("title"), tuple(actions),
                    dst, note)


__all__ = ["C2PAInfo", "read_c2pa"]
