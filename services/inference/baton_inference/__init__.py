"""Baton inference service."""
