"""Many cells at once: scatter-gather, cell health, reachability probes, one
sort order and the cross-cell sorted, paginated list.
"""
