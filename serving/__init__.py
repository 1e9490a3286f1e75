"""Everything that answers over HTTP: the control plane (campaign deployments come next)."""
