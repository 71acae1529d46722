"""User code in isolation: JavaScript engine, Python subprocess jail."""
