"""Scaling: scaling groups, policies, drivers, drain and the termination handshake."""
