"""Settings: web.config ``<appSettings>`` + environment + explicit overrides, validated at start."""
from app.config.settings import SETTINGS, Settings, load_settings

__all__ = ["SETTINGS", "Settings", "load_settings"]
