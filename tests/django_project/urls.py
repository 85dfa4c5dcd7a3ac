from django.urls import path

from tests.django_project.shop import views

urlpatterns = [
    path("live/", views.live, name="live"),
]
