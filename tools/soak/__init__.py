"""``python -m tools.soak``: a long Server run at a share of the measured peak, watched window by window."""
