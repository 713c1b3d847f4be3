"""Identity and access: single sign-on, login lockout, password reset, API throttling."""
