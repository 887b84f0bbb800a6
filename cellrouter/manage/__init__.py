"""Operator work: the ``cellrouter-manage`` verbs as plain functions, the CLI
built on them, host discovery and map_instances.
"""
