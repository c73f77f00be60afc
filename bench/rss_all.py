"""Load all six detectors in one process (generated weights), score one image each, report peak and steady RSS.

    python bench/rss_all.py SPEC_JSON IMAGE

The peak is the kernel's high-water mark of this process image (``VmHWM``), not ``getrusage``'s ``ru_maxrss``:
Linux carries ``ru_maxrss`` across ``execve``, so a child of a large benchmark process would report its parent's
peak. The steady value is the resident set once all six are loaded and have scored (``VmRSS``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (kB) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    from core import create_detector, load_image
    spec = json.loads(Path(sys.argv[1]).read_text())
    img = load_image(sys.argv[2])
    dets = []
    for det_id, (w, b) in spec.items():
        det = create_detector(det_id, weights=w, backbone_weights=b)
        det.predict(img)
        dets.append(det)
    print(json.dumps({"peak_rss_mb": _status_mb("VmHWM"), "steady_rss_mb": _status_mb("VmRSS"),
                      "loaded": list(spec)}))


if __name__ == "__main__":
    main()
