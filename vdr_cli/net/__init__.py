"""Shared network services: the HTTP client, URL policy, capped fetching."""
