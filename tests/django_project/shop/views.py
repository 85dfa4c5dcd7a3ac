from typing import Any

from django.shortcuts import render


def live(request: Any) -> Any:
    return render(request, "shop/live.html")
