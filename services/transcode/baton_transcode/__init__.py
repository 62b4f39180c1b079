"""Baton transcode service."""
