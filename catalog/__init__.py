"""The catalog: teams, memberships, environments, services, instances, API tokens."""
