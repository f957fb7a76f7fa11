"""WADO-RS (PS3.18 10.4): retrieve instances, frames, metadata, bulk data, rendered images and thumbnails."""
