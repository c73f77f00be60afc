"""The one colour palette of every chart (app figures and case reports).

Okabe & Ito's eight colours: distinguishable by people with the common colour-vision deficiencies, and eight series
apart from each other. Verdict colours are fixed: fake red, real green, no vote grey.
"""
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FAKE = "#dc2626"
REAL = "#16a34a"
NEUTRAL = "#9ca3af"
UNCERTAIN = "#d97706"
