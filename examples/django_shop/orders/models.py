from django.db import models


class Order(models.Model):
    STATUSES = [("new", "New"), ("paid", "Paid"), ("shipped", "Shipped")]

    customer = models.CharField(max_length=100)
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=10, choices=STATUSES, default="new")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.quantity} × {self.item} for {self.customer}"

    def next_status(self) -> str | None:
        order = [key for key, _ in self.STATUSES]
        index = order.index(self.status)
        return order[index + 1] if index + 1 < len(order) else None
