"""``memcube ui``: a local web app for the person whose memory it is (issue 14).

It is one more process on the home, like each MCP server: it opens the cubes through the
``memory`` API (``MemoryHome`` / ``MemCube``) and sees what the servers write through
SQLite. It serves on loopback only, behind a per-launch token, as one principal
(``memcube-ui``) under the home's ``[access]`` rules; its changes are recorded with that
client name. Modules: ``security`` (binding, token, CSRF, CSP), ``service`` (what each view
reads and changes), ``jobs`` (export and import in the background), ``routes`` (the JSON
API), ``app`` (the Starlette app and the launcher), ``static/`` (HTML, CSS, JavaScript).
"""
