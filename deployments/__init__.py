"""Deployments: rollouts, strategies, analysis, the reconciler and traffic routers."""
