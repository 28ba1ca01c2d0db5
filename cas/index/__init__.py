"""The SQLite index: the only code in cas that speaks SQL."""

from cas.index.db import Index, VersionRow

__all__ = ["Index", "VersionRow"]
