"""The databases: engines and their time bounds, the two schema tiers and their
migrations, what a driver error means, set-based SQL helpers.
"""
