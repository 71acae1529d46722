"""Webhook ingress and provider verifiers, schedules, events."""
