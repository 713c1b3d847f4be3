"""Deployments API: rollouts and their actions under /api/v1/."""
