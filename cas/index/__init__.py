"""The SQLite index: the only code in cas that speaks SQL.

``Index`` (db: connections, transactions, migrations) answers every question by subject: versions, content, records, meta, runs, lineage, the stat cache."""

from cas.index.db import Index
from cas.index.lineage import LineageRows
from cas.index.meta import JournalCursor
from cas.index.runs import RunRow, StepRow
from cas.index.statcache import Looked, StatCache
from cas.index.versions import VersionRow

__all__ = ["Index", "JournalCursor", "LineageRows", "Looked", "RunRow", "StatCache", "StepRow", "VersionRow"]
