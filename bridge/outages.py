"""The outage store's former address, kept for importers outside the mains package.

The store moved to :mod:`bridge.mains.store` (see ``docs/architecture.md``);
``bridge/mqtt/spool.py``, ``bridge/deployment/checks.py`` and a benchmark still import
these names from here.  New code imports them from :mod:`bridge.mains.store`.
"""

from bridge.mains.store import KEEP_EVENTS, OutageStore, read_boot_id

__all__ = ["KEEP_EVENTS", "OutageStore", "read_boot_id"]
