"""A minimal Django project for tests/integration/test_django.py: settings, a shop app, a page with the tag.

Nothing here configures Django on import: the test module does, in-process
(``settings.configure`` with ``SETTINGS`` and its temp paths), so other tests
never see a Django setting.
"""
