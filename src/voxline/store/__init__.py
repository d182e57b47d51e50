"""The call store: every call, turn and event, and the recording path's conversation history.

``CallStore`` is the one object the application holds. Sessions feed it through the call
registry (``RecordSink``): each write is queued for the process's single writer task, so the
audio path never waits on the database. See ``writer.py`` for outages and the journal.
"""

from voxline.store import queries
from voxline.store.callstore import CallStore, StoreUnavailable

__all__ = ["CallStore", "StoreUnavailable", "queries"]
