"""The executor: planner, transitions, runner, templates, retry policy."""
