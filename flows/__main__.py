"""`python -m flows`: serve the deployments (what `kehoach worker` runs)."""

from flows.serve import serve_all

serve_all()
