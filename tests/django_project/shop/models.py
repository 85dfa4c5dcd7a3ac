"""Two models: a Customer (some fields sent, creates only) and an Order (every field type the mapping knows)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()
    notes = models.TextField(blank=True)          # never sent: not in the chosen fields
    vip = models.BooleanField(default=False)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    number = models.UUIDField(default=uuid.uuid4)
    status = models.CharField(max_length=20, default="new", help_text="new, paid or shipped")
    total = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField(default=1)
    weight = models.FloatField(null=True, blank=True)
    placed_at = models.DateTimeField(default=timezone.now)
    ships_on = models.DateField(null=True, blank=True)
    options = models.JSONField(default=dict)
    lead_time = models.DurationField(null=True, blank=True)
    receipt = models.BinaryField(null=True, blank=True)     # no event field type: "__all__" leaves it out
    watchers = models.ManyToManyField("auth.User", blank=True)   # not a column: left out too
