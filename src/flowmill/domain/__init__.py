"""Pure data and rules: workflows, executions, states, events. No I/O here."""
