"""
Django settings for Dashify.

Every setting that can vary between machines comes from the environment,
and this is the only module that reads it. Defaults are safe: DEBUG is off
and, with DEBUG off, startup refuses missing, default, short or shared
secrets. The development entry points (``make run``, ``make test``) turn
DEBUG on explicitly, which unlocks the built-in development secrets.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = os.environ


def _flag(name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (or true/false), not {value!r}.")


def _int(name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer.") from None


def _float(name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds.") from None


def _list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env.get(name, default).split(",") if item.strip()]


DEBUG = _flag("DJANGO_DEBUG", False)

# Development secrets: usable only with DEBUG on. Startup rejects them
# otherwise (see _require_secret below), which is why they may be public.
# (S105: these are published on purpose.)
DEV_SECRET_KEY = "dashify-dev-secret-key-not-for-production-0123456789ab"  # noqa: S105
DEV_WS_TOKEN_SECRET = "dashify-dev-websocket-token-secret-not-for-prod"  # noqa: S105
DEV_SERVICE_TOKEN_SECRET = "dashify-dev-service-token-secret-not-for-prod"  # noqa: S105
MIN_SECRET_BYTES = 32
# Django's own deploy check asks for 50 characters in SECRET_KEY.
MIN_SECRET_KEY_BYTES = 50


def _require_secret(
    name: str, dev_value: str, min_bytes: int = MIN_SECRET_BYTES
) -> str:
    value = env.get(name, "")
    if DEBUG:
        return value or dev_value
    if not value or value == dev_value:
        raise ImproperlyConfigured(
            f"{name} is not set. With DJANGO_DEBUG=0 Dashify needs a random secret "
            f"of at least {min_bytes} bytes, for example: "
            f"export {name}=\"$(python -c 'import secrets; "
            f"print(secrets.token_urlsafe(48))')\""
        )
    if len(value.encode()) < min_bytes:
        raise ImproperlyConfigured(
            f"{name} is shorter than {min_bytes} bytes; generate a longer one."
        )
    return value


SECRET_KEY = _require_secret("DJANGO_SECRET_KEY", DEV_SECRET_KEY, MIN_SECRET_KEY_BYTES)
DASHIFY_WS_TOKEN_SECRET = _require_secret(
    "DASHIFY_WS_TOKEN_SECRET", DEV_WS_TOKEN_SECRET
)
DASHIFY_SERVICE_TOKEN_SECRET = _require_secret(
    "DASHIFY_SERVICE_TOKEN_SECRET", DEV_SERVICE_TOKEN_SECRET
)
if (
    not DEBUG
    and len({SECRET_KEY, DASHIFY_WS_TOKEN_SECRET, DASHIFY_SERVICE_TOKEN_SECRET}) != 3
):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY, DASHIFY_WS_TOKEN_SECRET and DASHIFY_SERVICE_TOKEN_SECRET "
        "must all be different: a leak of one must not forge the others."
    )

PORT = _int("PORT", 8000)
ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "dashify",
    "accounts",
    "realtime",
    "internal",
    "worker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "dashify.middleware.RedisOutageMiddleware",
    "accounts.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.LastSeenMiddleware",
    "dashify.middleware.JobQueueAdminGuard",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dashify.urls"
ASGI_APPLICATION = "dashify.asgi.application"

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
            ],
        },
    },
]

if "DATABASE_URL" not in env:
    VAR_DIR.mkdir(exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        env.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dashify.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (two servers, a worker) share one SQLite file in
    # development and tests: wait for the write lock instead of failing,
    # take it when a transaction starts (a read that later writes cannot
    # deadlock), and keep a write-ahead log, so that readers never wait
    # for a writer and a commit is one append instead of a journal swap.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL;",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- Redis ------------------------------------------------------------------
# One Redis URL; its database index is a base from which every purpose gets
# its own index, so that clearing the general cache never signs anyone out
# and a flushed job queue never touches sessions. Each purpose can also be
# pointed at a server of its own.

REDIS_URL = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DASHIFY_REDIS_KEY_PREFIX = env.get("DASHIFY_REDIS_KEY_PREFIX", "dashify")
REDIS_PURPOSES = ("sessions", "cache", "tokens", "channels", "jobs")


def _redis_url_for(purpose: str, offset: int) -> str:
    override = env.get(f"DASHIFY_{purpose.upper()}_REDIS_URL")
    if override:
        return override
    parts = urlsplit(REDIS_URL)
    try:
        base = int(parts.path.lstrip("/") or 0)
    except ValueError:
        raise ImproperlyConfigured(
            "REDIS_URL must end in a database number, e.g. redis://127.0.0.1:6379/0"
        ) from None
    return urlunsplit(parts._replace(path=f"/{base + offset}"))


DASHIFY_REDIS_URLS = {
    purpose: _redis_url_for(purpose, offset)
    for offset, purpose in enumerate(REDIS_PURPOSES)
}
# Live-event fan-out can spread its groups over several Redis servers
# (comma-separated URLs; each group lives on one, chosen by hash). Every
# server process must list the same URLs in the same order.
DASHIFY_FANOUT_REDIS_URLS = _list(
    "DASHIFY_FANOUT_REDIS_URLS", DASHIFY_REDIS_URLS["channels"]
)
# Fail fast rather than hang a request when Redis is unreachable.
DASHIFY_REDIS_TIMEOUT = _float("DASHIFY_REDIS_TIMEOUT", 1.0)
# Connections per server process and purpose for the asyncio side (the
# WebSocket handshake), and how long a handshake waits for a free one.
DASHIFY_REDIS_MAX_CONNECTIONS = _int("DASHIFY_REDIS_MAX_CONNECTIONS", 100)
DASHIFY_REDIS_POOL_WAIT = _float("DASHIFY_REDIS_POOL_WAIT", 5.0)


def _redis_cache(purpose: str) -> dict:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": DASHIFY_REDIS_URLS[purpose],
        "KEY_PREFIX": f"{DASHIFY_REDIS_KEY_PREFIX}:{purpose}",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": DASHIFY_REDIS_TIMEOUT,
            "SOCKET_TIMEOUT": DASHIFY_REDIS_TIMEOUT,
        },
    }


CACHES = {
    "default": _redis_cache("cache"),
    "sessions": _redis_cache("sessions"),
}

# Failed sign-ins allowed per username and per client address within the
# window before the login form answers 429 for the rest of it.
DASHIFY_LOGIN_MAX_FAILURES = _int("DASHIFY_LOGIN_MAX_FAILURES", 10)
DASHIFY_LOGIN_WINDOW = _int("DASHIFY_LOGIN_WINDOW", 900)

SESSION_ENGINE = "accounts.sessions"
SESSION_CACHE_ALIAS = "sessions"
SESSION_COOKIE_AGE = _int("DASHIFY_SESSION_AGE", 14 * 24 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = "dashify_session"
CSRF_COOKIE_NAME = "dashify_csrftoken"

# --- Channels -----------------------------------------------------------------
# The dashboard socket fans group events out through realtime.fanout (one
# pub/sub subscription per group and process) and uses no channel layer.
# The layer stays configured for anything else built on Channels, and the
# benchmarks' stock-Channels baseline; docs/realtime.md compares them.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [DASHIFY_REDIS_URLS["channels"]],
            "prefix": f"{DASHIFY_REDIS_KEY_PREFIX}:asgi:",
        },
    }
}

# --- Tokens and the WebSocket -----------------------------------------------------
DASHIFY_WS_TOKEN_KID = env.get("DASHIFY_WS_TOKEN_KID", "ws-1")
# Secrets accepted during a rotation, besides the current one.
DASHIFY_WS_TOKEN_PREVIOUS_SECRETS = _list("DASHIFY_WS_TOKEN_PREVIOUS_SECRETS", "")
DASHIFY_WS_TOKEN_TTL = _int("DASHIFY_WS_TOKEN_TTL", 900)
DASHIFY_WS_TOKEN_LEEWAY = _int("DASHIFY_WS_TOKEN_LEEWAY", 5)
DASHIFY_ALLOWED_ORIGINS = _list(
    "DASHIFY_ALLOWED_ORIGINS", f"http://127.0.0.1:{PORT},http://localhost:{PORT}"
)
DASHIFY_WS_MAX_FRAME_BYTES = _int("DASHIFY_WS_MAX_FRAME_BYTES", 16 * 1024)
DASHIFY_WS_RATE = _int("DASHIFY_WS_RATE", 20)
# chat.join and board.subscribe per second (and at once), within the above.
DASHIFY_WS_JOIN_RATE = _int("DASHIFY_WS_JOIN_RATE", 2)
DASHIFY_WS_JOIN_BURST = _int("DASHIFY_WS_JOIN_BURST", 10)
# Cards per board: keeps a board's snapshot well inside one WebSocket frame.
DASHIFY_BOARD_MAX_CARDS = _int("DASHIFY_BOARD_MAX_CARDS", 500)
# Frames waiting to be written to one socket before it is closed (4009).
DASHIFY_WS_SEND_BUFFER = _int("DASHIFY_WS_SEND_BUFFER", 1024)
DASHIFY_WS_BURST = _int("DASHIFY_WS_BURST", 40)
DASHIFY_CHAT_HISTORY = _int("DASHIFY_CHAT_HISTORY", 50)
# How often an open socket confirms that its session is still signed in.
DASHIFY_WS_SESSION_CHECK = _float("DASHIFY_WS_SESSION_CHECK", 30.0)

# --- Service tokens, the internal API and the worker -------------------------------
# Service tokens live at most this long; the verifier refuses longer ones.
SERVICE_TOKEN_MAX_LIFETIME = 60
DASHIFY_SERVICE_TOKEN_TTL = _int("DASHIFY_SERVICE_TOKEN_TTL", 30)
if not 0 < DASHIFY_SERVICE_TOKEN_TTL <= SERVICE_TOKEN_MAX_LIFETIME:
    raise ImproperlyConfigured(
        f"DASHIFY_SERVICE_TOKEN_TTL must be between 1 and "
        f"{SERVICE_TOKEN_MAX_LIFETIME} seconds."
    )
DASHIFY_SERVICE_TOKEN_KID = env.get("DASHIFY_SERVICE_TOKEN_KID", "svc-1")
DASHIFY_SERVICE_TOKEN_PREVIOUS_SECRETS = _list(
    "DASHIFY_SERVICE_TOKEN_PREVIOUS_SECRETS", ""
)
# Where the worker reaches the internal API: never a public address.
DASHIFY_INTERNAL_API_URL = env.get(
    "DASHIFY_INTERNAL_API_URL", f"http://127.0.0.1:{PORT}"
).rstrip("/")
DASHIFY_JOB_QUEUE = env.get("DASHIFY_JOB_QUEUE", "default")
# Attempts of one API call inside a job (fresh token each, doubling pauses
# from DASHIFY_WORKER_BACKOFF seconds), then whole-job retries by RQ.
DASHIFY_WORKER_ATTEMPTS = _int("DASHIFY_WORKER_ATTEMPTS", 5)
DASHIFY_WORKER_BACKOFF = _float("DASHIFY_WORKER_BACKOFF", 0.5)
DASHIFY_JOB_RETRIES = _int("DASHIFY_JOB_RETRIES", 2)
DASHIFY_REMINDER_INTERVAL = _int("DASHIFY_REMINDER_INTERVAL", 900)
RQ_QUEUES = {
    DASHIFY_JOB_QUEUE: {
        "URL": DASHIFY_REDIS_URLS["jobs"],
        "DEFAULT_TIMEOUT": 300,
    }
}
RQ = {"WORKER_CLASS": "worker.rq.Worker"}
RQ_SHOW_ADMIN_LINK = True

DASHIFY_DEMO_PASSWORD = env.get("DASHIFY_DEMO_PASSWORD", "dashify-demo")

# --- Production hardening ---------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = _flag("DASHIFY_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The worker calls the internal API over the private network, in plain
    # HTTP; the public proxy never routes /internal/ (deploy/nginx.conf).
    SECURE_REDIRECT_EXEMPT = [r"^internal/"]
    SECURE_HSTS_SECONDS = _int("DASHIFY_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-dashify_session"
    CSRF_COOKIE_NAME = "__Host-dashify_csrftoken"
CSRF_TRUSTED_ORIGINS = DASHIFY_ALLOWED_ORIGINS
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- Logging ------------------------------------------------------------------
# "dashify.security" records authentication events by category and ids;
# no record at any level carries a token, cookie, query string or secret.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "dashify.logging.RedactFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env.get("DASHIFY_LOG_LEVEL", "INFO")},
    "loggers": {
        # Drop Django's own console handler, which writes every record a
        # second time and without the redaction filter; records reach the
        # root handler instead.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.channels.server": {"level": "WARNING"},
        "daphne.server": {"level": "WARNING"},
        # uvicorn logs each WebSocket's path and query string (the token)
        # on uvicorn.error, access log or not: redact at the source, so
        # that uvicorn's own handlers only ever see the cleaned record.
        "uvicorn.error": {"filters": ["redact"]},
        "uvicorn.access": {"filters": ["redact"], "propagate": True},
    },
}
