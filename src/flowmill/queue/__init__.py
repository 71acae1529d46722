"""Job transport: the in-process queue (embedded) and BullMQ on Redis (distributed)."""
