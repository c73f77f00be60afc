"""One seed-style run: a fresh Python process builds one detector, loads its checkpoint, scores one image, exits.

Used by bench/run.py as the baseline (the seed ran each detector this way, for every image). The model is put back
into the default memory format so the baseline is the plain fp32 model the seed ran.
    python bench/seed_style.py DETECTOR WEIGHTS BACKBONE|- IMAGE
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    t0 = time.perf_counter()
    import torch

    from core import create_detector, load_image
    det_id, weights, backbone, image = sys.argv[1:5]
    det = create_detector(det_id, weights=weights, backbone_weights=None if backbone == "-" else backbone)
    det.model.to(memory_format=torch.contiguous_format)
    det.memory_format = torch.contiguous_format
    t_load = time.perf_counter()
    r = det.predict(load_image(image))
    t_end = time.perf_counter()
    print(json.dumps({"logit": r.logit, "in_process_s": t_end - t0, "load_s": t_load - t0,
                      "predict_s": t_end - t_load}))


if __name__ == "__main__":
    main()
