"""Connector nodes: one module per outside service (Instagram, Slack, Gmail, e-mail,
databases, SMS), each authenticating with a credential from the vault and each with an
overridable base URL (for a regional endpoint, a proxy, or a local stand-in in tests).
"""
