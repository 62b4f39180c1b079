"""Baton chain service."""
