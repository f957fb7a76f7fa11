"""Benchmark of DICOMcloud for Python against Orthanc (+ DICOMweb plugin) and nginx serving the same bytes.

Run it with ``bench/run`` (installs the Debian packages and the venv, then ``python -m bench``); see
bench/README.md.
"""
