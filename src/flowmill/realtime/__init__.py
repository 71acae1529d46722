"""Live execution event streams (SSE, Socket.IO)."""
