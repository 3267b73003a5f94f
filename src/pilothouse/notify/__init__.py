"""Notifications: what the server tells people outside it (webhooks)."""
