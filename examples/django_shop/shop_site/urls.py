from django.contrib import admin
from django.urls import path

from orders import views

urlpatterns = [
    path("", views.index, name="index"),
    path("orders/<int:pk>/advance", views.advance, name="advance"),
    path("orders/<int:pk>/delete", views.delete, name="delete"),
    path("gateway-config", views.gateway_config, name="gateway-config"),
    path("admin/", admin.site.urls),
]
