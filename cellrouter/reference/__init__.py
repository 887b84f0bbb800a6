"""The reference deployment: an API, a super conductor and cell compute agents.

Built on ``cellrouter``'s public names only (a test checks every import), so
it doubles as the proof that the public surface is enough to write a cells v2
service; ``cellrouter-demo`` runs it end to end.
"""
