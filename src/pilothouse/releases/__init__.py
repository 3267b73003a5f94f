"""Promotion, canaries and rollback of releases."""
