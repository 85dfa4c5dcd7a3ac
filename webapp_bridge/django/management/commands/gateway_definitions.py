"""``python manage.py gateway_definitions [--output FILE | -] [--check]``: write the models' event classes.

By default the file is settings.GATEWAY['DEFINITIONS'] (else stdout). With
``--check`` nothing is written: the command fails if the file is not what it
would write (for CI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp_bridge.django.definitions import render
from webapp_bridge.django.registry import events, gateway_settings


class Command(BaseCommand):
    # The checks would warn about the very file this command writes.
    requires_system_checks: list[str] = []
    help = ("Write the YAML definitions of the event classes the models send (list the file in gateway.yaml's "
            "events.files).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", help="the file to write, or - for stdout (default: "
                                                    "settings.GATEWAY['DEFINITIONS'], else stdout)")
        parser.add_argument("--check", action="store_true",
                            help="write nothing; fail if the file is missing or out of date")

    def handle(self, *args: Any, output: str | None = None, check: bool = False, **options: Any) -> None:
        text = render(events().values())
        target = Path(output) if output not in (None, "-") else None
        if output is None:
            target = gateway_settings().definitions
        if check:
            if target is None:
                raise CommandError("--check needs a file: give --output FILE or set settings.GATEWAY['DEFINITIONS']")
            if not target.is_file():
                raise CommandError(f"{target} does not exist; run `python manage.py gateway_definitions`")
            if target.read_text() != text:
                raise CommandError(f"{target} is out of date; run `python manage.py gateway_definitions`")
            self.stdout.write(f"{target} is up to date")
            return
        if target is None:
            self.stdout.write(text, ending="")
            return
        try:
            unchanged = target.is_file() and target.read_text() == text
            if not unchanged:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Written whole, then renamed over the old file: a gateway watching it never reads half of it.
                partial = target.with_name(f".{target.name}.tmp")
                partial.write_text(text)
                partial.replace(target)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc}") from None
        names = ", ".join(e.name for e in sorted(events().values(), key=lambda e: e.name)) or "none"
        self.stdout.write(f"{target}: {'unchanged' if unchanged else 'written'} (event classes: {names})")
