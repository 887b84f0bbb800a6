"""Reaching one cell: its pooled engine and transport (the registry), request
contexts targeted at it, routing an instance to its (database, queue, host), RPC.
"""
