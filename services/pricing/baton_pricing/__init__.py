"""Baton pricing service."""
