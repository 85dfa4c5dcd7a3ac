from django.contrib import admin

from orders.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "item", "quantity", "total", "status", "created_at")
    list_editable = ("status",)
