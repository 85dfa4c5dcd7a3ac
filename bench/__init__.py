"""Benchmarks, run by hand (``bench/README.md``); what they share is in ``bench._lib``.

May import: ``components``, ``webapp_bridge.proxy``, ``tests.support`` (they drive real nodes).
"""
