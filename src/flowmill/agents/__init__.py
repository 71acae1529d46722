"""Agents: LLM providers behind one port, personas, conversation memory.

No node code here: the ``agent`` node (``nodes/agent.py``) uses these through
``NodeServices.agents``. Providers are the official SDKs (``pip install
flowmill[agents]``), each given an HTTP transport that goes through the SSRF-guarded
client, so a tenant's ``base_url`` is vetted like any other outbound URL.
"""
