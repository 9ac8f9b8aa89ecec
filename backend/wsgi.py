"""Production entry point: the API under gunicorn, as Flask-SocketIO's deployment docs describe.

    gunicorn -c backend/gunicorn_conf.py -b 127.0.0.1:5001 'backend.wsgi:app'

One gunicorn worker process (Socket.IO sessions live in it; more need sticky sessions) with many threads,
WebSocket through simple-websocket, and a deadline on slow or half-open clients (backend/gunicorn_conf.py).
Settings come from KD_* variables (KD_DATA_DIR, KD_BROKER_URL, ...).
The data dir is locked by this process, and SIGTERM cancels the running local job before it exits.
"""

from __future__ import annotations

from backend.app import serve_prepare

app = serve_prepare()
