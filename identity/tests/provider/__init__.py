"""A real OpenID Connect provider for the SSO tests: django-oauth-toolkit in its own project.

Run as its own uvicorn process with its own SQLite database (identity/tests/conftest.py),
it stands in for a company's identity provider: a login page, a consent page, RS256-signed
ID tokens, discovery, JWKS and userinfo, and a `groups` claim under the `groups` scope.
"""
