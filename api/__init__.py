"""The HTTP API: workflow runs and ad-hoc queries for scripts, authenticated by API tokens."""
