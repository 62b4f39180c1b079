"""Baton monitor service."""
