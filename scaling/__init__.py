"""Scaling: groups, policies, decisions, drivers, drain and the termination handshake."""
