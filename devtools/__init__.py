"""Development tools beside the app, never imported by it: the demo and a throwaway PostgreSQL."""
