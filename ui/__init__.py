"""Streamlit-only helpers (cached loaders, widgets, figure builders). core/ never imports this."""
