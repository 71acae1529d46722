"""Node types, one module each, registered under the ``flowmill.nodes`` entry points."""
