"""The management view: :mod:`.app` (routes), :mod:`.pages` (HTML), :mod:`.svg` (charts),
:mod:`.server` (uvicorn in the archive's process)."""
