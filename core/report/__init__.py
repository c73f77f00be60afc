"""Case reports: one image's evidence as report.json and a self-contained report.html.

build.py gathers the evidence (forensics, detectors, ensemble, assessment, robustness probe) into a JSON-ready dict;
html.py renders it through template.html; svg.py draws the inline charts.
"""
from core.report.build import REPORT_VERSION, CaseReport, build_report, write_report
from core.report.html import image_png_b64
from core.report.svg import svg_line_chart
from core.versions import library_versions

__all__ = ["REPORT_VERSION", "CaseReport", "build_report", "write_report", "image_png_b64", "svg_line_chart",
           "library_versions"]
