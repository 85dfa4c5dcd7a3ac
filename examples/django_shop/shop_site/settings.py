"""Settings of the Django shop example: a development setup (DEBUG, SQLite); see README.md."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
REPO = BASE_DIR.parent.parent

DEBUG = True
SECRET_KEY = "django-shop-example-only-not-secret"   # an example: never deploy it
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "webapp_bridge.django",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "shop_site.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",   # {% gateway_client_config %} needs the request
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
LOGIN_URL = "admin:login"

# The events gateway (webapp_bridge.django). CONFIG is the gateway.yaml the
# gateway runs with (`make run` in the repo root uses the repo's); the
# definitions file is relative to it and must be in its events.files.
GATEWAY = {
    "CONFIG": os.environ.get("GATEWAY_CONFIG", str(REPO / "gateway.yaml")),
    "DEFINITIONS": str(BASE_DIR / "shop_events.yaml"),
    "CREDENTIALS": "ticket",
    "ROLES": "orders.identity.roles",
    "MODELS": {
        "orders.Order": {
            "fields": ["customer", "item", "quantity", "total", "status"],
            "description": "An order of the Django shop example was placed, changed or deleted.",
        },
    },
}

# Failures to send an event are logged on "webapp_bridge.django": show them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"webapp_bridge.django": {"handlers": ["console"], "level": "INFO"}},
}
