"""CSV in and out: exports are safe to open in a spreadsheet and keep one row per input; hostile labels CSVs end
in one sentence (exit 2 on the CLI) and never hang."""
from __future__ import annotations

import csv
import io
import os
import threading

import pandas as pd
import pytest
from tests.helpers import png_bytes

from core.cli.main import main as cli_main
from core.evaluation import datasets as D
from core.evaluation.labels import DatasetError, read_csv_rows
from core.tables import frame_to_csv, rows_to_csv, spreadsheet_safe

HOSTILE_NAMES = ["=HYPERLINK(\"http://evil/\",\"x\").png", "+1+2.png", "-2+3.png", "@SUM(A1).png",
                 "\tcmd.png", "line\rbreak.png", "new\nline.png", "comma,quote\".png", "plain.png"]


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1+1", "@A1", "\t=1", "\r=1"])
def test_text_cells_that_would_run_as_formulas_are_neutralised(cell):
    assert spreadsheet_safe(cell) == "'" + cell
    assert spreadsheet_safe("a=1") == "a=1" and spreadsheet_safe(-0.5) == -0.5


def test_frame_export_keeps_one_row_per_input_and_neutralises_text_only():
    frame = pd.DataFrame({"path": HOSTILE_NAMES, "x_logit": [-1.5] * len(HOSTILE_NAMES)})
    text = frame_to_csv(frame)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(HOSTILE_NAMES)                      # a CR or LF in a name never splits a row
    for (path, logit), name in zip(rows[1:], HOSTILE_NAMES):
        assert logit == "-1.5"                                      # numbers stay numbers
        assert path == (("'" + name) if name[0] in "=+-@\t\r" else name)
    assert pd.read_csv(io.StringIO(text)).shape == (len(HOSTILE_NAMES), 2)


def test_dict_rows_export_follows_the_same_policy():
    text = rows_to_csv(["series", "v"], [{"series": "=cmd", "v": 1}, {"series": "a\rb", "v": -2}])
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["series", "v"], ["'=cmd", "1"], ["a\rb", "-2"]]


def test_evaluate_export_of_hostile_names_is_one_row_each_and_formula_free(tmp_path):
    # a predictions CSV from another tool whose paths are hostile: predictions.csv keeps each as one inert row
    src = tmp_path / "preds.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "other_tool"])
        for i, name in enumerate(HOSTILE_NAMES):
            w.writerow([name, i % 2, 0.1 + 0.08 * i])
    out = tmp_path / "out"
    assert cli_main(["evaluate", str(src), "--out", str(out)]) == 0
    with (out / "predictions.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(HOSTILE_NAMES)
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value
            assert not (value.startswith("-") and not _is_number(value)), value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_a_folder_file_name_with_a_carriage_return_is_one_row(tmp_path):
    root = tmp_path / "set"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a\rb.png").write_bytes(png_bytes(seed=1))
    (root / "real" / "=cmd.png").write_bytes(png_bytes(seed=2))
    ds = D.from_folder(root)
    assert sorted(it.path for it in ds.items) == sorted(["real/a\rb.png", "real/=cmd.png"])


# ------------------------------------------------------------------------------------------ hostile labels CSVs

def test_a_labels_csv_row_naming_a_fifo_is_skipped_and_never_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    (tmp_path / "ok.png").write_bytes(png_bytes())
    (tmp_path / "labels.csv").write_text("path,label\npipe.png,fake\nok.png,real\n", encoding="utf-8")
    done = {}

    def run():
        done["ds"] = D.from_labels_csv(tmp_path / "labels.csv")
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "listing a labels CSV with a FIFO row hung"
    by = {it.path: it for it in done["ds"].items}
    assert by["pipe.png"].status == "skipped" and "not a regular file" in by["pipe.png"].reason
    assert by["ok.png"].status == "ok"


def test_reading_a_file_that_became_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises((OSError, ValueError)):
        D._read_file_nofollow(str(fifo))


def test_a_fifo_given_as_the_labels_csv_is_refused(tmp_path):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file"):
        read_csv_rows(fifo)


def test_a_nul_byte_in_a_path_cell_is_a_row_with_a_reason(tmp_path):
    (tmp_path / "labels.csv").write_bytes(b"path,label\nok.png,real\n")
    (tmp_path / "ok.png").write_bytes(png_bytes())
    ds = D.from_labels_csv(tmp_path / "labels.csv")
    assert [it.status for it in ds.items] == ["ok"]
    # csv keeps a NUL byte inside a cell; the whole file is refused as not text, with a sentence
    (tmp_path / "nul.csv").write_bytes(b"path,label\nok\x00.png,real\n")
    with pytest.raises(DatasetError, match="NUL bytes"):
        D.from_labels_csv(tmp_path / "nul.csv")


def test_a_control_character_in_a_path_cell_is_skipped(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\n\"a\x07b.png\",real\n", encoding="utf-8")
    (item,) = D.from_labels_csv(tmp_path / "labels.csv").items
    assert item.status == "skipped" and "control characters" in item.reason


def test_a_field_over_the_csv_limit_is_one_sentence(tmp_path):
    big = tmp_path / "labels.csv"
    big.write_text("path,label\n" + "a" * (csv.field_size_limit() + 10) + ".png,real\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="longer than .* characters"):
        read_csv_rows(big)


@pytest.mark.parametrize("content", [b"path,label\nx\x00.png,real\n", b"path,label\n" + b"b" * 200_000 + b",real\n"])
def test_the_cli_answers_hostile_labels_csvs_with_exit_2_and_one_sentence(tmp_path, capsys, content):
    src = tmp_path / "labels.csv"
    src.write_bytes(content)
    assert cli_main(["evaluate", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err and len(err.splitlines()) == 1, err
