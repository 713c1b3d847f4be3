"""Health: check specs, probes, the scheduler, states, rollups, heartbeats, maintenance."""
