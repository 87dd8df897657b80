"""The two stores a cube can live in, as one type for the code above them.

``CubeStore``: the data folder's SQLite file (the default). ``PostgresCubeStore``: a cube of
the PostgreSQL store that several servers share (needs the ``postgres`` extra, so it is
imported for type checking only). Both take the same calls; what only a data folder's cube
can do (imports into its file, repairs of it) asks for ``MemCube.folder_store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from memory.store.cube_store import CubeStore
    from memory.store.postgres.cube_store import PostgresCubeStore

AnyCubeStore: TypeAlias = "CubeStore | PostgresCubeStore"
