"""Outbound HTTP with the SSRF guard."""
