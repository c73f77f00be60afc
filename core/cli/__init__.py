"""The command line (``python -m core …``): one module per command, shared option parsing in ``common``."""
