from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from orders.models import Order
from webapp_bridge.django import client_config


class OrderForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Order
        fields = ["customer", "item", "quantity", "total"]


def index(request: HttpRequest) -> HttpResponse:
    """The orders, a form to place one, and the live events of every change."""
    form = OrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()   # the event is sent when the transaction commits
        return redirect("index")
    return render(request, "orders/index.html", {"form": form, "orders": Order.objects.all()[:20]})


@require_POST
def advance(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    following = order.next_status()
    if following is not None:
        order.status = following
        order.save()
    return redirect("index")


@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(Order, pk=pk).delete()
    return redirect("index")


def gateway_config(request: HttpRequest) -> Any:
    """A fresh client configuration (a ticket is good once): the page asks for one to reconnect."""
    return JsonResponse(client_config(request.user))
