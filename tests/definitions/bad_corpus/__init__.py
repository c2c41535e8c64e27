"""A generated corpus of malformed procedure files: one defect each (see generate.py)."""
