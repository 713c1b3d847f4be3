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
RUN mkdir -p /var/lib/signalbox/fleet \
 && chown signalbox /var/lib/signalbox /var/lib/signalbox/fleet \
 && SIGNALBOX_ENV=development python manage.py collectstatic --no-input >/dev/null

USER signalbox
EXPOSE 8000
CMD ["uvicorn", "controlplane.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--ws", "websockets-sansio", "--ws-per-message-deflate", "false"]
