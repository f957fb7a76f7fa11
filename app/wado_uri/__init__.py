"""WADO-URI (PS3.18 9): ``GET /api/wadouri?requestType=WADO&...`` and DICOMcloud's ``/wadouri``."""
