"""Django settings, all read from the environment (see docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import django_stubs_ext
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_secret,
    env_str,
    local_secret,
)

# Django's generic classes (ModelAdmin, fields, QuerySet) take type arguments at run time
# too, as django-stubs describes them: mypy runs strict (pyproject.toml).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SIGNALBOX_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SIGNALBOX_ENV = env_str("SIGNALBOX_ENV", "development")
if SIGNALBOX_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(
        f"SIGNALBOX_ENV={SIGNALBOX_ENV!r}; use development, production or test"
    )
PRODUCTION = SIGNALBOX_ENV == "production"
if SIGNALBOX_ENV == "test":
    # PBKDF2 costs ~0.35 s per user and tests create personas for every test; tests of
    # password storage itself do not exist here (Django's own suite covers hashing).
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if PRODUCTION:
    SECRET_KEY = env_secret("SECRET_KEY") or ""
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set to 50+ random characters in production"
        )
    _encryption_key = env_secret("SIGNALBOX_ENCRYPTION_KEY") or ""
    if not _encryption_key:
        raise ImproperlyConfigured(
            "SIGNALBOX_ENCRYPTION_KEY (or _FILE) must be set in production; "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
else:
    SECRET_KEY = env_secret("SECRET_KEY") or local_secret(VAR_DIR / "secret_key")
    _encryption_key = env_secret("SIGNALBOX_ENCRYPTION_KEY") or local_secret(
        VAR_DIR / "encryption_key", lambda: Fernet.generate_key().decode()
    )
try:
    Fernet(_encryption_key.encode())
except ValueError:
    raise ImproperlyConfigured(
        "SIGNALBOX_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)"
    ) from None
SIGNALBOX_ENCRYPTION_KEY = _encryption_key

DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SIGNALBOX_BASE_URL = env_str(
    "SIGNALBOX_BASE_URL", f"http://127.0.0.1:{env_int('SIGNALBOX_PORT', 8000)}"
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files
    "django_htmx",
    "channels",
    "axes",
    "controlplane",
    "catalog",
    "health",
    "deployments",
    "circuits",
    "debugging",
    "topology",
    "scaling",
    "alerts",
    "identity",
    "statuspage",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "controlplane.static_files.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "controlplane.metrics.RequestMetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a login refused for lockout into the lockout page (identity/lockout.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
ASGI_APPLICATION = "controlplane.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.context.signalbox",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_secret("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/signalbox"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_secret("REDIS_URL") or "redis://127.0.0.1:6379/0"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "signalbox",
    }
}
CHANNEL_LAYERS = {
    "default": {
        # One Redis PUBLISH per group message, however many clients are subscribed.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Redis pub/sub ignores database numbers, so the prefix names the database: two
        # installs (or test runs) sharing one Redis on different databases stay apart.
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": f"signalbox:{urlparse(REDIS_URL).path.strip('/') or '0'}:live",
        },
    }
}

CELERY_BROKER_URL = env_secret("CELERY_BROKER_URL") or REDIS_URL
# A redis:// broker goes through kombu's Redis transport with the fix of controlplane/broker.py
# (a worker with a task running died when Redis restarted); other brokers (rediss:// too) as
# kombu has them.
if urlparse(CELERY_BROKER_URL).scheme == "redis":
    CELERY_BROKER_TRANSPORT = "controlplane.broker:Transport"
# No result backend: tasks write what they did to PostgreSQL and nothing waits on a result,
# so there is no second Redis connection per task to lose.
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ALWAYS_EAGER = False
# A broker outage (docs/operations.md, "When Redis or PostgreSQL goes away"): workers retry,
# at startup and after losing it, forever (never exit for a broker that is only away), every
# few seconds (controlplane/broker.py).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0  # seconds to connect, per attempt
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A Redis that vanishes without closing the socket (failover, a dropped route) is noticed
    # in seconds rather than never: a publish waits at most socket_timeout, and the
    # long-lived BRPOP and pub/sub connections are checked every health_check_interval.
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    "socket_keepalive": True,
    "health_check_interval": 10,
    # A message whose worker died unacknowledged is handed out again after this long. Work
    # itself is claimed from PostgreSQL with leases (30-60 s), which is what recovers it;
    # this only bounds how long a stale message lingers. Longer than any task runs (the
    # longest are notification sends, ALERTS_HTTP_TIMEOUT_SECONDS).
    "visibility_timeout": 300,
}
# A task that is running when the broker goes away finishes, and its late ack goes through
# once the broker is back (controlplane/broker.py). Cancelling it instead (Celery 6's
# default) would run it again from the start: a notification already sent would go twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"
# A password-reset link works this long (seconds) and only once (docs/authentication.md).
PASSWORD_RESET_TIMEOUT = env_int("SIGNALBOX_PASSWORD_RESET_TIMEOUT", 3600, minimum=300)

# Identity (docs/authentication.md). Single sign-on with OpenID Connect through
# mozilla-django-oidc: off unless SIGNALBOX_OIDC_ISSUER is set.
SIGNALBOX_OIDC_ISSUER = env_str("SIGNALBOX_OIDC_ISSUER", "").rstrip("/")
SIGNALBOX_OIDC_ENABLED = bool(SIGNALBOX_OIDC_ISSUER)
OIDC_RP_CLIENT_ID = env_str("SIGNALBOX_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_secret("SIGNALBOX_OIDC_CLIENT_SECRET") or ""
if SIGNALBOX_OIDC_ENABLED and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "SIGNALBOX_OIDC_ISSUER is set: set SIGNALBOX_OIDC_CLIENT_ID and "
        "SIGNALBOX_OIDC_CLIENT_SECRET (or SIGNALBOX_OIDC_CLIENT_SECRET_FILE) too, as the "
        "identity provider registered Signalbox"
    )
# Endpoints come from the issuer's /.well-known/openid-configuration unless given here.
SIGNALBOX_OIDC_ENDPOINTS = {
    "authorization_endpoint": env_str("SIGNALBOX_OIDC_AUTHORIZATION_ENDPOINT", ""),
    "token_endpoint": env_str("SIGNALBOX_OIDC_TOKEN_ENDPOINT", ""),
    "userinfo_endpoint": env_str("SIGNALBOX_OIDC_USERINFO_ENDPOINT", ""),
    "jwks_uri": env_str("SIGNALBOX_OIDC_JWKS_ENDPOINT", ""),
}
OIDC_RP_SCOPES = env_str("SIGNALBOX_OIDC_SCOPES", "openid email profile")
if SIGNALBOX_OIDC_ENABLED and "openid" not in OIDC_RP_SCOPES.split():
    raise ImproperlyConfigured(f"SIGNALBOX_OIDC_SCOPES={OIDC_RP_SCOPES!r} must include openid")
OIDC_RP_SIGN_ALGO = env_str("SIGNALBOX_OIDC_SIGN_ALGO", "RS256")
OIDC_USE_PKCE = env_bool("SIGNALBOX_OIDC_USE_PKCE", True)
OIDC_TIMEOUT = env_int("SIGNALBOX_OIDC_TIMEOUT_SECONDS", 10, minimum=1)
OIDC_CALLBACK_CLASS = "identity.sso.CallbackView"
OIDC_AUTHENTICATE_CLASS = "identity.sso.AuthenticateView"
SIGNALBOX_OIDC_BUTTON_LABEL = env_str("SIGNALBOX_OIDC_BUTTON_LABEL", "Sign in with SSO")
SIGNALBOX_OIDC_USERNAME_CLAIM = env_str("SIGNALBOX_OIDC_USERNAME_CLAIM", "preferred_username")
SIGNALBOX_OIDC_GROUPS_CLAIM = env_str("SIGNALBOX_OIDC_GROUPS_CLAIM", "groups")
# "group=team:role" entries (comma-separated, or one per line), "group=platform:admin" for
# platform admins; applied at every SSO login (identity/group_roles.py).
SIGNALBOX_OIDC_GROUP_ROLES = env_secret("SIGNALBOX_OIDC_GROUP_ROLES") or ""
# An SSO session ends after this long: the next login asks the provider (and the mapping) again.
SIGNALBOX_OIDC_SESSION_HOURS = env_int("SIGNALBOX_OIDC_SESSION_HOURS", 12, minimum=1)
# Link a first SSO login to an existing local account with the same, verified, email.
SIGNALBOX_OIDC_LINK_BY_EMAIL = env_bool("SIGNALBOX_OIDC_LINK_BY_EMAIL", False)
# Who may sign in with a local password: everyone, or only platform admins (break-glass).
SIGNALBOX_LOCAL_LOGIN = env_str("SIGNALBOX_LOCAL_LOGIN", "everyone")
if SIGNALBOX_LOCAL_LOGIN not in {"everyone", "admins"}:
    raise ImproperlyConfigured(
        f"SIGNALBOX_LOCAL_LOGIN={SIGNALBOX_LOCAL_LOGIN!r}; use everyone or admins"
    )
if SIGNALBOX_LOCAL_LOGIN == "admins" and not SIGNALBOX_OIDC_ENABLED:
    raise ImproperlyConfigured(
        "SIGNALBOX_LOCAL_LOGIN=admins leaves only platform admins a way in while single "
        "sign-on is off; set SIGNALBOX_OIDC_ISSUER (docs/authentication.md) or use everyone"
    )

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login
    "django.contrib.auth.backends.ModelBackend",
] + (["identity.sso.Backend"] if SIGNALBOX_OIDC_ENABLED else [])

# Login lockout (django-axes): after this many failed logins the same username from the
# same client address is refused for the cool-off; a success clears the count.
AXES_FAILURE_LIMIT = env_int("SIGNALBOX_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("SIGNALBOX_LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_PARAMETERS = [
    [part.strip() for part in combination.split("+")]
    for combination in env_list("SIGNALBOX_LOGIN_LOCKOUT_BY", ["username+ip_address"])
]
if any(p not in {"username", "ip_address"} for c in AXES_LOCKOUT_PARAMETERS for p in c):
    raise ImproperlyConfigured(
        "SIGNALBOX_LOGIN_LOCKOUT_BY lists combinations of username and ip_address, e.g. "
        "username+ip_address (both together) or username,ip_address (either)"
    )
AXES_LOCKOUT_CALLABLE = "identity.lockout.locked_out"
AXES_CLIENT_IP_CALLABLE = "identity.client_ip.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False
# Axes would also keep a row per successful login, forever; sign-ins that change something
# (SSO links, role changes, lockouts) are events in the audit log instead.
AXES_DISABLE_ACCESS_LOG = True
# Proxies in front of Signalbox that append the client's address to X-Forwarded-For. 0:
# the header is ignored (anyone can send it), the peer's address is the client's.
SIGNALBOX_TRUSTED_PROXY_COUNT = env_int("SIGNALBOX_TRUSTED_PROXY_COUNT", 0, minimum=0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request without it
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if not PRODUCTION
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "catalog.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["catalog.permissions.DenyWithoutRule"],
    # A view naming its own backends (SearchFilter, OrderingFilter) lists
    # KnownQueryParameters first too; controlplane/tests/test_api_query_parameters.py
    # fails any list that does not.
    "DEFAULT_FILTER_BACKENDS": [
        "controlplane.api.KnownQueryParameters",
        "django_filters.rest_framework.DjangoFilterBackend",
    ],
    "DEFAULT_PAGINATION_CLASS": "controlplane.api.Pagination",
    "PAGE_SIZE": 50,
    # Adds the one error shape and each view's permission rule to every operation.
    "DEFAULT_SCHEMA_CLASS": "catalog.api.schema.SignalboxAutoSchema",
    "EXCEPTION_HANDLER": "controlplane.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Per API token (and per signed-in person), never per address: identity/throttling.py.
    "DEFAULT_THROTTLE_CLASSES": ["identity.throttling.CallerRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_str("SIGNALBOX_API_TOKEN_RATE", "3000/min"),
        "user": env_str("SIGNALBOX_API_USER_RATE", "1200/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Signalbox API",
    "DESCRIPTION": "The Signalbox control plane: catalog, health, rollouts, circuits, alerts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # /api/docs/ works offline: Swagger UI from drf-spectacular-sidecar, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Security: strict in production, relaxed only where local HTTP needs it.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie-free meta tag instead
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SILENCED_SYSTEM_CHECKS: list[str] = []

# Event spine: Celery task names handed each committed event id (alert evaluation).
SIGNALBOX_EVENT_CONSUMERS: list[str] = env_list(
    "SIGNALBOX_EVENT_CONSUMERS", ["alerts.tasks.evaluate"]
)
SIGNALBOX_EVENT_RETENTION_DAYS = env_int("SIGNALBOX_EVENT_RETENTION_DAYS", 90, minimum=1)
# How long a team invitation's emailed link works (docs/dashboard.md, Team page).
SIGNALBOX_INVITATION_HOURS = env_int("SIGNALBOX_INVITATION_HOURS", 72, minimum=1)

# Outbound calls to user-set addresses (controlplane/outbound.py, docs/configuration.md):
# metadata and link-local are always refused; loopback and private networks only where
# listed here. Instances live on private networks, so those are allowed by default;
# loopback (the control plane's own box: its database, Redis, admin ports) only outside
# production, where the demo fleet and the tests run on it.
_PRIVATE_NETWORKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]
SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = env_networks(
    "SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS",
    _PRIVATE_NETWORKS if PRODUCTION else [*_PRIVATE_NETWORKS, "127.0.0.0/8", "::1/128"],
)
if env_str("SIGNALBOX_PROBE_ALLOW_LINK_LOCAL", "") != "":
    raise ImproperlyConfigured(
        "SIGNALBOX_PROBE_ALLOW_LINK_LOCAL is gone: link-local and metadata addresses are "
        "always refused; allow loopback or private networks with "
        "SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS (docs/configuration.md)"
    )

# Health (docs/health.md): per-minute rollups become hourly after a day and everything is
# pruned after the retention.
SIGNALBOX_HEALTH_RETENTION_DAYS = env_int("SIGNALBOX_HEALTH_RETENTION_DAYS", 35, minimum=1)
SIGNALBOX_PROBE_CONCURRENCY = env_int("SIGNALBOX_PROBE_CONCURRENCY", 500, minimum=1)
# Connections of each web process's async pool for heartbeat pings (health/ping_asgi.py).
SIGNALBOX_PING_POOL_SIZE = env_int("SIGNALBOX_PING_POOL_SIZE", 4, minimum=1)
# Each heartbeat keeps its last 100 pings; older than this they go even so (hourly sweep).
SIGNALBOX_HEARTBEAT_PING_RETENTION_DAYS = env_int(
    "SIGNALBOX_HEARTBEAT_PING_RETENTION_DAYS", 90, minimum=1
)
# A per-process connection pool (psycopg_pool) instead of persistent per-thread
# connections. uvicorn runs each request's sync code on a fresh thread, so CONN_MAX_AGE
# keeps one connection per request until PostgreSQL refuses more ("too many clients"):
# set this (e.g. 10) for web processes under load. 0 keeps the default behaviour.
# Celery workers reuse a connection across tasks safely (its Django fixup closes stale
# ones), so `make run` sets DATABASE_CONN_MAX_AGE=60 for them; web processes use the pool.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
SIGNALBOX_DB_POOL_SIZE = env_int("SIGNALBOX_DB_POOL_SIZE", 0, minimum=0)
if SIGNALBOX_DB_POOL_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"]["OPTIONS"],  # type: ignore[dict-item]
        # After PostgreSQL restarts every pooled connection is dead: with CONN_HEALTH_CHECKS
        # (database_from_url sets it) Django gives the pool ConnectionPool.check_connection,
        # so each is tried (one round trip) as it is handed out and replaced if it broke,
        # instead of failing the request that got it (test_resilience_postgres.py).
        "pool": {"min_size": 1, "max_size": SIGNALBOX_DB_POOL_SIZE, "timeout": 10},
    }

# Load shedding (controlplane/shedding.py, docs/operations.md): the HTTP requests one web
# process works on at once; past it, requests are answered 503 + Retry-After at once instead
# of queueing until they time out. 0 turns shedding off. The default is the heartbeat
# bench's own concurrency (64 clients over two processes, bench/RESULTS.md) with room to spare.
SIGNALBOX_MAX_IN_FLIGHT = env_int("SIGNALBOX_MAX_IN_FLIGHT", 64, minimum=0)

# A bearer token Prometheus must send to read /metrics; empty: /metrics is open (keep it on
# an internal network then). docs/operations.md.
SIGNALBOX_METRICS_TOKEN = env_secret("SIGNALBOX_METRICS_TOKEN") or ""

# Deployments (docs/deployments.md): a rollout's lease outlasts any one step (driver and
# provider timeouts are seconds); it is also how long a killed worker's rollout waits
# before another worker takes it over.
SIGNALBOX_ROLLOUT_LEASE_SECONDS = env_int("SIGNALBOX_ROLLOUT_LEASE_SECONDS", 30, minimum=1)

# Circuits (docs/circuits.md).
# An instance silent this long is stale: its last state is no longer shown as current.
SIGNALBOX_CIRCUITS_STALE_SECONDS = env_int("SIGNALBOX_CIRCUITS_STALE_SECONDS", 60, minimum=5)
# Stale states are then dropped (history stays): one silent for a day was most likely replaced.
SIGNALBOX_CIRCUITS_FORGET_HOURS = env_int("SIGNALBOX_CIRCUITS_FORGET_HOURS", 24, minimum=1)
# Per-minute samples and transitions older than this are pruned.
SIGNALBOX_CIRCUITS_HISTORY_DAYS = env_int("SIGNALBOX_CIRCUITS_HISTORY_DAYS", 14, minimum=1)
# Seconds between scrapes of the targets derived from instance labels.
SIGNALBOX_CIRCUITS_SCRAPE_INTERVAL = env_int("SIGNALBOX_CIRCUITS_SCRAPE_INTERVAL", 15, minimum=2)
# Reports dated further ahead than this are refused: they would shadow every later report.
SIGNALBOX_CIRCUITS_MAX_CLOCK_SKEW = env_int("SIGNALBOX_CIRCUITS_MAX_CLOCK_SKEW", 300, minimum=1)
# The longest a debug window may stay open (seconds; docs/debugging.md).
SIGNALBOX_DEBUG_WINDOW_MAX_SECONDS = env_int(
    "SIGNALBOX_DEBUG_WINDOW_MAX_SECONDS", 4 * 3600, minimum=60
)

# Alerts (docs/alerts.md).
SLACK_SIGNING_SECRET = env_secret("SLACK_SIGNING_SECRET") or ""
ALERTS_PAGERDUTY_EVENTS_URL = env_str(
    "ALERTS_PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue"
)
ALERTS_HTTP_TIMEOUT_SECONDS = env_int("ALERTS_HTTP_TIMEOUT_SECONDS", 10, minimum=1)
# A lease outlives the slowest send (the timeout), so a live worker never loses its row.
ALERTS_LEASE_SECONDS = env_int(
    "ALERTS_LEASE_SECONDS", 60, minimum=ALERTS_HTTP_TIMEOUT_SECONDS + 5
)
ALERTS_MAX_ATTEMPTS = env_int("ALERTS_MAX_ATTEMPTS", 12, minimum=1)
ALERTS_RETRY_BASE_MS = env_int("ALERTS_RETRY_BASE_MS", 2000, minimum=1)
ALERTS_RETRY_MAX_SECONDS = env_int("ALERTS_RETRY_MAX_SECONDS", 600, minimum=1)
ALERTS_REPEAT_SECONDS = env_int("ALERTS_REPEAT_SECONDS", 4 * 3600, minimum=60)
ALERTS_ESCALATE_AFTER_SECONDS = env_int("ALERTS_ESCALATE_AFTER_SECONDS", 900, minimum=60)
# Enqueue a delivery task as soon as an outbox row commits (off: only the sweep delivers).
ALERTS_DISPATCH = env_bool("ALERTS_DISPATCH", True)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "signalbox@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Trace ingest (topology/ingest, docs/tracing.md): the largest OTLP/HTTP request body, also
# after gzip (a bomb is refused once this much is inflated); how long the half of a call
# whose other side has not arrived waits for it; the OTLP requests one web process works on
# at once before answering 429 + Retry-After.
SIGNALBOX_OTLP_MAX_BYTES = env_int("SIGNALBOX_OTLP_MAX_BYTES", 4 * 1024 * 1024, minimum=1024)
SIGNALBOX_OTLP_PAIR_WAIT_SECONDS = env_int("SIGNALBOX_OTLP_PAIR_WAIT_SECONDS", 10, minimum=1)
SIGNALBOX_OTLP_MAX_IN_FLIGHT = env_int("SIGNALBOX_OTLP_MAX_IN_FLIGHT", 8, minimum=1)
