"""Streamlit helpers of the Evaluation page: input widgets, the run (progress, ETA, cancel) and the result views.

Session state (namespaced ``eval.*``): ``eval.result`` (the last :class:`~core.evaluation.runner.EvalRun`), ``eval.job``
(the run in progress, kept until it finishes so a cancelled run can be rebuilt from the score cache),
``eval.cancel_requested``, ``eval.reports`` (threshold → report memo of the current result), ``eval.message``,
``eval.inputs`` (parsed uploads, keyed by the uploads' file ids, so a rerun does not re-read a large zip).
"""
from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import settings
from core.evaluation import datasets as D
from core.evaluation import runner as E
from core.evaluation.metrics import METRIC_LABELS, BinaryMetrics
from core.io import IMAGE_TYPES
from core.models.registry import get_spec, list_specs
from core.tables import frame_to_csv
from ui import eval_figures as F

STATE_DEFAULTS = {"eval.result": None, "eval.job": None, "eval.cancel_requested": False, "eval.reports": {},
                  "eval.message": None, "eval.inputs": {}}
SERVER_PATH = "Path on the server"
SOURCES = ("Zip file", "Folder upload", "Image files (+ labels CSV)", SERVER_PATH, "Predictions CSV only")
# threshold-free ranking metrics first (ROC-AUC, EER, TPR at a fixed FPR), so they are on screen without scrolling
TABLE_METRICS = ("roc_auc", "eer", "tpr_at_fpr_1", "tpr_at_fpr_5", "accuracy", "balanced_accuracy", "tpr", "tnr",
                 "average_precision", "ece", "oracle_threshold", "oracle_accuracy", "coverage")
GALLERY_MAX = 24
# short column headers (the full name is the header's tooltip), so the table's first columns fit without scrolling
SHORT_LABELS = {"roc_auc": "AUC", "tpr_at_fpr_1": "TPR@1%FPR", "tpr_at_fpr_5": "TPR@5%FPR", "accuracy": "acc.",
                "balanced_accuracy": "bal. acc.", "tpr": "TPR", "tnr": "TNR", "average_precision": "AP",
                "oracle_threshold": "oracle thr.", "oracle_accuracy": "oracle acc.", "coverage": "decided"}


@dataclass(frozen=True)
class Job:
    """What a run needs, kept in session state while it runs (so Cancel can rebuild it from the cache)."""

    dataset: D.Dataset
    keys: tuple[str, ...]
    ensemble: bool
    external: E.ExternalScores | None
    batch_size: int


def init_eval_state() -> None:
    """Initialise the page's keys (safe on every rerun)."""
    for k, v in STATE_DEFAULTS.items():
        st.session_state.setdefault(k, v.copy() if isinstance(v, dict) else v)


# --------------------------------------------------------------------------------------------- inputs

def detector_picker() -> list[str]:
    """Multiselect of installed detector variants; the missing ones are named with how to get them."""
    from ui.models import availability, chosen_keys
    avail = [availability(s.key) for s in list_specs()]
    ready = [a.spec.key for a in avail if a.ready]
    # detectors with no installed variant at all, by name (listing every variant, "custom" ones included, was noise)
    missing = list(dict.fromkeys(a.spec.id for a in avail if not any(b.ready for b in avail if b.spec.id == a.spec.id)))
    kwargs = {}
    current = st.session_state.get("eval.detectors")
    if current is None:     # face-swap classifiers are offered, never pre-chosen: AI-image data have no swapped faces
        kwargs["default"] = [k for k in chosen_keys() if k in ready and get_spec(k).coverage.content != "faces"]
    elif any(k not in ready for k in current):      # weights removed since: drop them instead of failing
        st.session_state["eval.detectors"] = [k for k in current if k in ready]
    picked = st.multiselect("Detectors", ready, key="eval.detectors", **kwargs,
                            help="Only detectors whose weights are installed can run.",
                            placeholder="no detector installed" if not ready else "choose detectors")
    if missing:
        st.caption(f"Not installed (so not offered): {', '.join(missing)}. Install weights on the Models page or "
                   "with `python -m core weights import`. A predictions CSV needs no weights at all.")
    return list(picked)


def sources() -> tuple[str, ...]:
    """The data sources offered: a path on the server only when ``DEEPFAKE_LENS_DATA_ROOT`` names the one folder
    the app may read (otherwise anyone who reaches the port could list the machine's folders)."""
    return SOURCES if settings.data_root() is not None else tuple(s for s in SOURCES if s != SERVER_PATH)


def server_dataset(text: str) -> tuple[D.Dataset, E.ExternalScores | None]:
    """The folder / zip / labels CSV / predictions CSV at ``text``, relative to the data root (or absolute),
    confined to it → (dataset, external scores). A CSV with score columns is a predictions CSV, read as the same
    upload would be (it was read as a labels CSV, and every row whose image is not on the server became an error).

    Raises:
        DatasetError: no data root configured, outside it (``..`` and symlinks are resolved first), not found.
    """
    root = settings.data_root()
    if root is None:
        raise D.DatasetError("Paths on the server are off: set DEEPFAKE_LENS_DATA_ROOT to the folder the app may "
                             "read.")
    path = root / text                                       # an absolute path replaces root in the join
    if path.suffix.lower() in (".csv", ".tsv", ".txt") and _inside(root, path) and path.is_file():
        try:
            return E.read_predictions(path, name=path.name)
        except D.DatasetError:
            pass                                             # no score column: a labels CSV
    return D.from_path(path, allowed_root=root), None        # confinement and existence checked here


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks and ``..`` resolved) lies inside ``root``."""
    try:
        rp, rr = path.resolve(), root.resolve()
    except OSError:
        return False
    return rp == rr or rr in rp.parents


def plot_name(name: str) -> str:
    """A source name (a CSV column: untrusted) made inert for Plotly, whose labels read HTML tags and ``%{…}``."""
    return html.escape(name).replace("%{", "%&#123;")


def problem(exc: Exception, what: str) -> None:
    """An error whose sentence may quote a file or column name: the alert in our words, the sentence as text."""
    st.error(what)
    st.text(str(exc))


def _memo(slot: str, ident: tuple, build):
    """Parse an upload once: reuse the parsed value while the same uploaded file(s) stay in the widget."""
    memo = st.session_state.setdefault("eval.inputs", {})
    hit = memo.get(slot)
    if hit is not None and hit[0] == ident:
        return hit[1]
    value = build()
    memo[slot] = (ident, value)
    return value


def dataset_input() -> tuple[D.Dataset | None, E.ExternalScores | None]:
    """The data widgets for the chosen source → (dataset, external scores). Problems are shown, never raised."""
    offered = sources()
    if st.session_state.get("eval.source") not in (None, *offered):
        del st.session_state["eval.source"]           # the data root was unset since: back to the first source
    source = st.radio("Data source", offered, horizontal=True, key="eval.source")
    dataset, external = None, None
    try:
        if source == "Zip file":
            up = st.file_uploader("A zip of labelled folders (real/ fake/, 0_real/ 1_fake/, …)", type=["zip"],
                                  key="eval.zip")
            if up is not None:
                dataset = _memo("zip", (up.file_id,), lambda: D.from_zip(up.getvalue(), name=up.name))
        elif source == "Folder upload":
            ups = st.file_uploader("A folder with real/ and fake/ subfolders", accept_multiple_files="directory",
                                   key="eval.folder")
            if ups:
                dataset = _memo("folder", tuple(u.file_id for u in ups),
                                lambda: D.from_uploads([(u.name, u.getvalue()) for u in ups], name="uploaded folder"))
        elif source == "Image files (+ labels CSV)":
            ups = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key="eval.files")
            labels = st.file_uploader("Labels CSV (path,label[,group])", type=["csv"], key="eval.labels_csv")
            if ups:
                ident = tuple(u.file_id for u in ups) + ((labels.file_id,) if labels is not None else ())
                dataset = _memo("files", ident, lambda: D.from_uploads(
                    [(u.name, u.getvalue()) for u in ups],
                    labels=D.labels_from_csv(labels.getvalue()) if labels is not None else None))
        elif source == SERVER_PATH:
            path = st.text_input("Folder, .zip or labels .csv on the server, inside the data folder",
                                 key="eval.path", help="Relative to the data folder below, or absolute inside it.")
            st.text(f"Data folder (DEEPFAKE_LENS_DATA_ROOT): {settings.data_root()}")
            if path.strip():
                dataset, external = server_dataset(path.strip())
        else:
            up = st.file_uploader("Predictions CSV (path or id, label, one or more score columns)", type=["csv"],
                                  key="eval.predictions")
            if up is not None:
                dataset, external = _memo("predictions", (up.file_id,),
                                          lambda: E.read_predictions(up.getvalue(), name=up.name))
        if source != "Predictions CSV only" and (dataset is None or dataset.kind != "predictions"):
            cmp = st.file_uploader("Optional: compare with a predictions CSV from another tool", type=["csv"],
                                   key="eval.compare_csv")
            if cmp is not None:
                _, external = _memo("compare", (cmp.file_id,), lambda: E.read_predictions(cmp.getvalue(), name=cmp.name))
    except D.DatasetError as exc:
        problem(exc, "These data cannot be evaluated:")
        return None, None
    if dataset is not None:
        st.text(dataset.summary())                    # names the upload or folder: plain text
    return dataset, external


# --------------------------------------------------------------------------------------------- running

def _eta_text(done: int, total: int, eta: float | None) -> str:
    if eta is None:
        return f"{done} / {total} images"
    m, s = divmod(int(round(eta)), 60)
    return f"{done} / {total} images · about {f'{m} min ' if m else ''}{s} s left"


def _store(run: E.EvalRun, message: str | None = None) -> None:
    st.session_state["eval.result"] = run
    st.session_state["eval.reports"] = {}
    st.session_state["eval.message"] = message


def _request_cancel() -> None:
    st.session_state["eval.cancel_requested"] = True


def start(job: Job) -> None:
    """Run an evaluation with a progress bar, an ETA and a Cancel button; store the result in session state."""
    from ui.models import apply_threads, get_detector
    dets, problems = [], []
    loading = st.empty()
    for i, key in enumerate(job.keys, 1):      # a model's first load can take minutes: say which one is loading
        loading.progress((i - 1) / len(job.keys), text=f"Loading detector {i} of {len(job.keys)}: {key} (slow only "
                                                       "on its first use on this server)…")
        det, why = get_detector(key)
        if det is not None:
            dets.append(det)
        else:
            problems.append(why)
    loading.empty()
    for p in problems:
        st.warning(p)
    if not dets and job.external is None:
        st.error("No detector can run: choose at least one installed detector (or evaluate a predictions CSV).")
        return
    apply_threads()
    st.session_state["eval.job"] = job
    st.session_state["eval.cancel_requested"] = False
    # Clicking Cancel reruns the page, which stops this run at its next progress update; the click's callback
    # then marks the job cancelled and finish_interrupted_job() rebuilds the partial result from the cache.
    slot = st.empty()
    slot.button("Cancel", key="eval.cancel", on_click=_request_cancel, icon=":material/stop_circle:")
    bar = st.progress(0.0, text="Preparing…")
    run = E.evaluate(job.dataset, dets, batch_size=job.batch_size, ensemble=job.ensemble, external=job.external,
                     thumbnails=160, cancel=lambda: bool(st.session_state.get("eval.cancel_requested")),
                     progress=lambda d, t, eta: bar.progress(d / t if t else 1.0, text=_eta_text(d, t, eta)))
    bar.empty()
    slot.empty()
    st.session_state["eval.job"] = None
    _store(run, "Cancelled: the images not reached are marked 'cancelled'." if run.cancelled else None)


def finish_interrupted_job() -> None:
    """A run stopped by Cancel (or by leaving the page) is rebuilt from the score cache without any model call."""
    job: Job | None = st.session_state.get("eval.job")
    if job is None:
        return
    st.session_state["eval.job"] = None
    cancelled = bool(st.session_state.get("eval.cancel_requested"))
    st.session_state["eval.cancel_requested"] = False
    from ui.models import get_detector
    dets = [d for d in (get_detector(k)[0] for k in job.keys) if d is not None]
    run = E.evaluate(job.dataset, dets, ensemble=job.ensemble, external=job.external, thumbnails=160,
                     cache_only=True)
    run = dataclasses.replace(run, cancelled=True)
    _store(run, ("Cancelled" if cancelled else "The run was interrupted") +
           ": the results below cover the images scored so far (the rest are marked 'cancelled'). Their scores "
           "are cached, so running again resumes where it stopped.")


# --------------------------------------------------------------------------------------------- results

def _report(run: E.EvalRun, threshold: float) -> E.EvalReport:
    memo = st.session_state.setdefault("eval.reports", {})
    if threshold not in memo:
        memo[threshold] = E.compute_report(run, threshold)
    return memo[threshold]


def _cell(m: BinaryMetrics, name: str) -> str:
    v = m.value(name)
    return "n/a" if v is None else f"{v:.3f}"


def comparison_table(report: E.EvalReport) -> tuple[pd.DataFrame, list[str]]:
    """One row per source: n, every metric as text ('n/a' when undefined), and the n/a reasons as sentences."""
    rows, reasons = [], []
    for key, sr in report.sources.items():
        m = sr.overall
        row = {"source": sr.source.name, "n": m.n}
        row.update({METRIC_LABELS[k]: _cell(m, k) for k in TABLE_METRICS})
        row.update({"real": m.n_real, "fake": m.n_fake, "unscored": m.n_unscored})
        rows.append(row)
        seen: dict[str, list[str]] = {}
        for k, why in m.na.items():
            if k in TABLE_METRICS:
                seen.setdefault(why, []).append(METRIC_LABELS[k])
        reasons += [f"{sr.source.name}: {', '.join(v)} n/a — {why}." for why, v in seen.items()]   # st.text
    return pd.DataFrame(rows), reasons


def group_table(report: E.EvalReport) -> pd.DataFrame:
    """One row per (source, group)."""
    rows = []
    for sr in report.sources.values():
        for g, m in sr.groups.items():
            rows.append({"source": sr.source.name, "group": g, "n": m.n, "real": m.n_real, "fake": m.n_fake,
                         **{METRIC_LABELS[k]: _cell(m, k) for k in ("accuracy", "tpr", "tnr", "roc_auc", "eer")},
                         "note": sr.group_notes.get(g, "")})
    return pd.DataFrame(rows)


def image_table(run: E.EvalRun, threshold: float) -> pd.DataFrame:
    """The per-image table: predictions CSV columns (p_fake only) plus each source's call at the threshold."""
    df = E.predictions_frame(run)
    df = df[[c for c in df.columns if not c.endswith("_logit") and c != "sha256"]].copy()
    for src in run.sources:
        p = run.p_fake[src.key]
        if src.kind == "ensemble" and run.verdict is not None:
            call = np.array([{1: "fake", 0: "real", -1: "uncertain"}.get(int(v), "") for v in run.verdict])
        else:
            call = np.where(np.isfinite(p), np.where(p > threshold, "fake", "real"), "")
        df[f"{src.key} call"] = call
    return df


def _outcome_mask(run: E.EvalRun, key: str, threshold: float, kind: str) -> np.ndarray:
    labels = np.array([-1 if r.label is None else r.label for r in run.rows])
    ok = np.array([r.status == "ok" for r in run.rows]) & np.isfinite(run.p_fake[key])
    src = run.source(key)
    if src.kind == "ensemble" and run.verdict is not None:
        fake_call, real_call = run.verdict == 1, run.verdict == 0
    else:
        fake_call, real_call = run.p_fake[key] > threshold, run.p_fake[key] <= threshold
    if kind == "false positives":
        return ok & (labels == 0) & fake_call
    return ok & (labels == 1) & real_call


def error_gallery(run: E.EvalRun, threshold: float) -> None:
    """Thumbnails of the false positives / negatives of one source, each captioned with every source's score."""
    keys = [s.key for s in run.sources]
    c1, c2 = st.columns(2)
    key = c1.selectbox("Errors of", keys, key="eval.gallery_source", format_func=lambda k: run.source(k).name)
    kind = c2.radio("Show", ("false positives", "false negatives"), horizontal=True, key="eval.gallery_kind",
                    help="False positive: a real image called fake. False negative: a fake image called real.")
    idx = np.flatnonzero(_outcome_mask(run, key, threshold, kind))
    if not idx.size:
        st.text(f"No {kind} for {run.source(key).name} at this threshold.")
        return
    order = idx[np.argsort(-run.p_fake[key][idx] if kind == "false positives" else run.p_fake[key][idx])]
    st.caption(f"{idx.size} {kind}" + (f"; the {GALLERY_MAX} most confident shown" if idx.size > GALLERY_MAX else ""))
    cols = st.columns(6)
    for n, i in enumerate(order[:GALLERY_MAX]):
        scores = " · ".join(f"{s.key.split(':')[0] if s.kind == 'detector' else s.name} {run.p_fake[s.key][i]:.2f}"
                            for s in run.sources if np.isfinite(run.p_fake[s.key][i]))
        caption = f"{run.rows[i].path} ({'fake' if run.rows[i].label else 'real'}) — {scores}"
        with cols[n % 6]:
            if i in run.thumbnails:
                st.image(run.thumbnails[i], width="stretch")
            st.text(caption)                          # a file name from the analyst's data: plain text


@st.fragment
def threshold_views() -> None:
    """Everything that depends on the threshold; moving the slider reruns only this fragment (no model runs)."""
    run: E.EvalRun | None = st.session_state.get("eval.result")
    if run is None:
        return
    t = st.slider("Decision threshold on p_fake (fake when p_fake > threshold)", 0.01, 0.99, 0.5, 0.01,
                  key="eval.threshold")
    report = _report(run, float(t))
    st.subheader("Comparison")
    table, reasons = comparison_table(report)
    st.dataframe(table, hide_index=True, width="stretch", key="eval.table.metrics",
                 column_config={"source": st.column_config.TextColumn("source", pinned=True),
                                **{METRIC_LABELS[k]: st.column_config.TextColumn(SHORT_LABELS.get(k, METRIC_LABELS[k]),
                                                                                 help=METRIC_LABELS[k])
                                   for k in TABLE_METRICS}})
    if reasons:
        st.text("\n".join(reasons))                   # source names can be CSV column names: plain text
    profiled = any(sr.source.kind in ("calibrated", "stacked") for sr in report.sources.values())
    st.caption("Rows without \"calibrated\" in their name are uncalibrated scores (detectors, the weighted vote's "
               "mean logit, other tools' columns): ECE measures how far they are from probabilities." +
               ("" if profiled else " A calibration profile chosen in the sidebar adds calibrated and "
                                    "learned-fusion rows."))
    if any(sr.groups for sr in report.sources.values()):
        with st.expander("Per group"):
            st.dataframe(group_table(report), hide_index=True, width="stretch", key="eval.table.groups")
    st.subheader("Confusion matrices")
    cols = st.columns(3 if len(report.sources) >= 3 else 2)
    for n, (key, sr) in enumerate(report.sources.items()):
        with cols[n % len(cols)]:
            st.plotly_chart(F.confusion_figure(sr.overall, plot_name(sr.source.name)), width="stretch",
                            key=f"eval.cm.{n}")
    if E.ENSEMBLE_KEY in report.sources:
        st.caption("The ensemble's matrix shows the original app's weighted-vote verdict (with UNCERTAIN as a "
                   "third column), not the slider threshold; its curves use the weighted mean logit.")
    with st.expander("Score histograms per class"):
        hk = st.selectbox("Source", list(report.sources), key="eval.hist_source",
                          format_func=lambda k: run.source(k).name)
        lab = np.array([-1 if r.label is None else r.label for r in run.rows])
        ok = np.array([r.status == "ok" for r in run.rows]) & np.isfinite(run.p_fake[hk])
        st.plotly_chart(F.histogram_figure(run.p_fake[hk][ok & (lab == 0)], run.p_fake[hk][ok & (lab == 1)],
                                           t, plot_name(run.source(hk).name)), width="stretch", key="eval.hist")
    st.subheader("Error gallery")
    error_gallery(run, float(t))
    st.subheader("Every image")
    df = image_table(run, float(t))
    c1, c2 = st.columns([1, 2])
    statuses = c1.multiselect("Status", D.STATUSES, default=list(D.STATUSES), key="eval.filter_status")
    text = c2.text_input("Path contains", key="eval.filter_text")
    view = df[df["status"].isin(statuses) & df["path"].str.contains(text, case=False, regex=False)]
    st.dataframe(view, hide_index=True, width="stretch", key="eval.table.images",
                 column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in view.columns
                                if c.endswith("_p_fake")})
    c1, c2 = st.columns(2)
    c1.download_button("Download per-image CSV", frame_to_csv(E.predictions_frame(run)),
                       file_name="predictions.csv", mime="text/csv", key="eval.dl_csv")
    c2.download_button("Download metrics JSON", json.dumps(E.metrics_json(run, report), indent=1, allow_nan=False),
                       file_name="metrics.json", mime="application/json", key="eval.dl_json")


def render_results(run: E.EvalRun) -> None:
    """Summary, curves (threshold-free) and the threshold fragment."""
    c = run.counts()
    st.success(f"Evaluated {len(run.rows)} files — {c['ok']} scored, {c['error']} unreadable, "
               f"{c['skipped']} skipped, {c['unlabelled']} unlabelled" +
               (f", {c['cancelled']} cancelled" if c["cancelled"] else "") +
               f". {run.computed} scores computed, {run.from_cache} from the cache, {run.elapsed_s:.1f} s.")
    st.text(f"Data: {run.dataset_name}")              # the upload's or folder's name: plain text
    if st.session_state.get("eval.message"):
        st.warning(st.session_state["eval.message"])
    notes = list(run.notes) + [f"{s.name}: {s.note}" for s in run.sources if s.note]
    if notes:                                         # may quote file and column names: plain text
        st.text("\n".join(notes))
    base = _report(run, 0.5)
    overall = {plot_name(sr.source.name): sr.overall for sr in base.sources.values()}
    c1, c2 = st.columns(2)
    c1.plotly_chart(F.roc_figure(overall), width="stretch", key="eval.roc")
    c2.plotly_chart(F.pr_figure(overall), width="stretch", key="eval.pr")
    with st.expander("Calibration (reliability diagram)"):
        st.plotly_chart(F.reliability_figure(overall), width="stretch", key="eval.reliability")
    threshold_views()
