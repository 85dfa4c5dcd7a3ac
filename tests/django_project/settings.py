"""The test project's settings; test_django.py fills in the paths (SQLite file, gateway.yaml) per run."""

from __future__ import annotations

from typing import Any


def settings(workdir: str, gateway: dict[str, Any]) -> dict[str, Any]:
    """The settings for ``settings.configure(**...)``: a database in ``workdir``, ``GATEWAY`` as given."""
    return {
        "DEBUG": False,
        "SECRET_KEY": "test-only-not-secret-0123456789-0123456789-0123456789",
        "ALLOWED_HOSTS": ["testserver"],
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "webapp_bridge.django",
            "tests.django_project.shop",
        ],
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "ROOT_URLCONF": "tests.django_project.urls",
        "TEMPLATES": [{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                               "django.contrib.auth.context_processors.auth"]},
        }],
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{workdir}/db.sqlite3"}},
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast; test users only
        "GATEWAY": gateway,
    }
