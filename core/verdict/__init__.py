"""From detector results to an answer an analyst can repeat.

ensemble (the original app's weighted vote, exactly), rules + assessment (the graded headline: strong / moderate /
weak evidence or inconclusive, from configs/ensemble.yaml), abstention (reasons to doubt), robustness (the probe),
calibration + fitting + stacking (profiles fitted by ``python -m core calibrate``), present (the shared wording).
Pure Python over results: no torch, no streamlit.
"""
