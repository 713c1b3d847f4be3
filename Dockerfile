# Signalbox: one image for web, worker, beat and the demo fleet (the command picks the role).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SIGNALBOX_VAR_DIR=/var/lib/signalbox STATIC_ROOT=/app/staticfiles
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app --shell /usr/sbin/nologin signalbox

WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# fleet/ holds the demo fleet's plan on a volume the seed reads; the volume takes this owner.
# collectstatic runs with the production settings, so it writes what production serves: the
# hashed, compressed files and their manifest (STORAGES in controlplane/settings.py). The
# production settings want keys; this step gets throwaway ones that exist only for the
# command (nothing it does signs or encrypts anything) and are kept nowhere in the image.
# controlplane/tests/test_production_path.py runs this line as written.
RUN mkdir -p /var/lib/signalbox/fleet \
 && chown signalbox /var/lib/signalbox /var/lib/signalbox/fleet \
 && SIGNALBOX_ENV=production \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    SIGNALBOX_ENCRYPTION_KEY="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --no-input >/dev/null

USER signalbox
EXPOSE 8000
CMD ["uvicorn", "controlplane.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--ws", "websockets-sansio", "--ws-per-message-deflate", "false"]
