"""Rendering for people: live views and timelines (stderr or files, never records)."""
