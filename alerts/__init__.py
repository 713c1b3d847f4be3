"""Alerts: rules, incidents, silences, routes, channels and the notification outbox."""
