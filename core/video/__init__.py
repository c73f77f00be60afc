"""Video analysis: sampled frames (:mod:`.reader`, :mod:`.sampling`), face tracks (:mod:`.tracks`), detectors on
frames (:mod:`.analyse`), the video-level assessment (:mod:`.verdict`) and the written outputs (:mod:`.report`).

Nothing is imported here, so ``import core.video.reader`` does not load torch.
"""
