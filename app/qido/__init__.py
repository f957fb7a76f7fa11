"""QIDO-RS: search for studies, series and instances (PS3.18 10.6)."""
