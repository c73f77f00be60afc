"""Every command, every kind of bad invocation: exit code 2 and one ``error: …`` sentence on stderr, no traceback.

Table-driven: each row is (command line with placeholders, a phrase the sentence must contain). Placeholders are
files the fixture makes: {img} a PNG, {csv} a predictions CSV, {empty} a 0-byte .png, {file} a plain file,
{ckpt} a TINY checkpoint, {junk} random bytes named .pt, {data} a labelled folder, {missing} a path that does not
exist, {out} a fresh output folder.
"""
from __future__ import annotations

import pytest
from tests.helpers import make_tiny_checkpoint, png_bytes

from core.cli.main import main

CASES = [
    # the parser itself
    ([], "required: command"),
    (["nope"], "invalid choice"),
    (["list", "--nope"], "unrecognized arguments"),
    # weights
    (["weights"], "required"),
    (["weights", "import", "{missing}"], "not found"),
    (["weights", "import", "{ckpt}"], "needs --detector"),
    (["weights", "import", "{ckpt}", "--detector", "NOPE"], "unknown detector 'NOPE'"),
    (["weights", "import", "{junk}", "--detector", "TINY"], "TINY"),
    (["weights", "import", "{data}"], "nothing imported"),
    (["weights", "import", "{ckpt}", "--detector", "TINY", "--part", "head"], "invalid choice"),
    (["weights", "download", "NOPE"], "unknown detector 'NOPE'"),
    (["weights", "delete", "TINY:nope"], "has no variant 'nope'"),
    # detect
    (["detect", "{img}"], "--detector"),
    (["detect", "{missing}", "--detector", "TINY", "--weights", "{ckpt}"], "file not found"),
    (["detect", "{csv}", "--detector", "TINY", "--weights", "{ckpt}"], "preds.csv: is not an image"),
    (["detect", "{empty}", "--detector", "TINY", "--weights", "{ckpt}"], "empty"),
    (["detect", "{img}", "--detector", "TINY"], "TINY"),                       # weights not installed
    (["detect", "{img}", "--detector", "TINY", "--weights", "{missing}"], "TINY"),
    (["detect", "{img}", "--detector", "TINY", "--weights", "{junk}"], "TINY"),
    # evaluate
    (["evaluate", "{missing}", "--detectors", "TINY", "--out", "{out}"], "not found"),
    (["evaluate", "{data}", "--detectors", "TINY", "--weights", "TINY", "--out", "{out}"], "expects ID=PATH"),
    (["evaluate", "{data}", "--detectors", "TINY", "--weights", "NOPE={ckpt}", "--out", "{out}"],
     "unknown detector 'NOPE'"),
    (["evaluate", "{data}", "--detectors", "TINY", "--batch-size", "many", "--out", "{out}"], "invalid int"),
    (["evaluate", "{data}", "--detectors", "TINY", "--weights", "TINY={ckpt}", "--out", "{file}"],
     "exists and is not a folder"),
    # calibrate
    (["calibrate", "{missing}", "--out", "{out}"], "not found"),
    (["calibrate", "{data}", "--out", "{data}"], "is a folder"),
    (["calibrate", "{data}", "--out", "{out}", "--method", "magic"], "invalid choice"),
    # report
    (["report", "{img}"], "--out"),
    (["report", "{img}", "--out", "{file}"], "exists and is not a folder"),
    (["report", "{img}", "--out", "{file}/sub"], "is a file"),
    (["report", "{csv}", "--out", "{out}"], "preds.csv: is not an image"),
    (["report", "{empty}", "--out", "{out}"], "empty"),
    (["report", "{missing}", "--out", "{out}"], "file not found"),
    (["report", "{img}", "--out", "{out}", "--detectors", "TINY"], "TINY"),    # weights not installed
    (["report", "{img}", "--out", "{out}", "--weights", "NOPE={ckpt}"], "unknown detector 'NOPE'"),
    (["report", "{img}", "--out", "{out}", "--weights", "TINY={missing}"], "TINY"),
    (["report", "{img}", "--out", "{out}", "--weights", "TINY={ckpt}", "--weights", "TINY={ckpt}"],
     "two files"),
    (["report", "{img}", "--out", "{out}", "--detectors", "TINY", "--weights", "NPR={ckpt}"],
     "not one of the chosen detectors"),
    (["report", "{img}", "--out", "{out}", "--ela-quality", "high"], "invalid int"),
    (["report", "{img}", "--out", "{out}", "--ela-quality", "0"], "between 1 and 100"),
    # video
    (["video", "{missing}", "--out", "{out}"], "missing.png"),
    # serve
    (["serve", "--port", "70000"], "--port must be between 0 and 65535"),
    (["serve", "--workers", "0"], "--workers must be at least 1"),
    (["serve", "--timeout", "0"], "--timeout must be a positive number"),
]


@pytest.fixture()
def paths(tiny_config, weights_home, tmp_path):
    (tmp_path / "img.png").write_bytes(png_bytes())
    (tmp_path / "preds.csv").write_text("path,label,score\na.png,1,0.3\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "junk.pt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "data" / "real").mkdir(parents=True)
    (tmp_path / "data" / "real" / "a.png").write_bytes(png_bytes())
    return {"img": tmp_path / "img.png", "csv": tmp_path / "preds.csv", "empty": tmp_path / "empty.png",
            "file": tmp_path / "a_file", "ckpt": make_tiny_checkpoint(tmp_path / "tiny.pt"),
            "junk": tmp_path / "junk.pt", "data": tmp_path / "data", "missing": tmp_path / "missing.png",
            "out": tmp_path / "out"}


@pytest.mark.parametrize("argv,phrase", CASES, ids=[" ".join(a) or "<none>" for a, _ in CASES])
def test_bad_invocation_exits_2_with_one_sentence(paths, capsys, argv, phrase):
    args = [a.format(**paths) for a in argv]
    try:
        code = main(args)
    except SystemExit as exc:               # argparse's own errors leave through sys.exit
        code = exc.code
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, (args, out.out, err)
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and phrase in err, err
    assert not paths["out"].exists()                                  # nothing written on a user error


def test_every_command_has_a_row():
    from core.cli.main import COMMANDS
    covered = {argv[0] for argv, _ in CASES if argv}
    names = {m.__name__.rsplit(".", 1)[1] for m in COMMANDS}
    assert names <= covered, names - covered
