"""Portability: archives (export and import), importers from other tools, backups.

Import validates every record exactly as ``memory_add`` does and writes through the
store's bulk methods, so nothing enters a cube that its read paths cannot serve.

May import: everything in ``memory`` (it is the top layer, a client of the cube API).
"""
