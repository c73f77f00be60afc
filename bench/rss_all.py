"""Load all six detectors in one process (generated weights), score one image each, report peak RSS.

    python bench/rss_all.py SPEC_JSON IMAGE
"""
from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from core import create_detector, load_image
    spec = json.loads(Path(sys.argv[1]).read_text())
    img = load_image(sys.argv[2])
    dets = []
    for det_id, (w, b) in spec.items():
        det = create_detector(det_id, weights=w, backbone_weights=b)
        det.predict(img)
        dets.append(det)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux: KiB
    print(json.dumps({"peak_rss_mb": rss_mb, "loaded": list(spec)}))


if __name__ == "__main__":
    main()
