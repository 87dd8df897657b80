"""The entity graph: Kuzu, derived from SQLite through the outbox.

Entity and Memory nodes with MENTIONS, RELATED and SUPERSEDES edges, opened only for
short sessions under an inter-process file lock (Kuzu lets one process open a database at
a time). Queued changes are read from and acknowledged to the store by named methods;
the graph never runs SQL itself and can always be rebuilt from SQLite.

May import: the store layer and the base vocabulary.
"""
