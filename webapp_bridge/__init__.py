"""The web-app side of the gateway: the HTTP bridge component."""
