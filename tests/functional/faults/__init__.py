"""Fault tests: a failing cell (database, broker) or API database hurts only itself."""
