"""What an agent tells operators: Prometheus metrics (logs are in `skyfleet.logs`)."""
