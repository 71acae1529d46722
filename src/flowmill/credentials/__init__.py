"""Credentials: encrypted at rest, never returned, decrypted only in the node using them."""
