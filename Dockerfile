# Production image: daphne serving Dashify on port 8000.
#
# Configuration comes from the environment at run time (docker-compose.yml
# shows the full set); the image holds no secret.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system dashify \
    && useradd --system --gid dashify --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin dashify

WORKDIR /app

# Requirements first, so that a code change does not reinstall everything.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Settings refuse to load with DEBUG off unless real-looking secrets are set.
# These placeholders exist only for this one command and never reach the
# running container, which must be given its own.
RUN DJANGO_DEBUG=0 \
    DJANGO_SECRET_KEY=collectstatic-placeholder-secret-key-not-used-at-run-time \
    DASHIFY_WS_TOKEN_SECRET=collectstatic-placeholder-ws-token-secret-not-used \
    DASHIFY_SERVICE_TOKEN_SECRET=collectstatic-placeholder-service-secret-not-used \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    python manage.py collectstatic --noinput

# The code stays owned by root, so the server cannot rewrite it.
USER dashify

EXPOSE 8000
CMD ["daphne", "--proxy-headers", "-b", "0.0.0.0", "-p", "8000", "dashify.asgi:application"]
