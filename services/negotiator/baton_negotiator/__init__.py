"""Baton negotiator service."""
