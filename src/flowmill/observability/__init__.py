"""Operations: Prometheus metrics, correlated logs, event-loop lag, traces.

Everything here wraps the engine from outside (node middleware, listeners of the
engine's hub, wrappers of its ports), never inside node code (DESIGN §2).
"""
