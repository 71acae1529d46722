"""Channels: a tenant's connected accounts (seed 004), and the match of an incoming
webhook payload to its channel and customer."""
