"""Retrieval: the one search path.

The embedder (ONNX Runtime, with integer products for int8 weights), the time and task
words a query carries, the plan that turns them into filters and ranking passes
(``planning``), and the hybrid search that fuses keyword, context, vector and entity
signals. Every reader (the MCP tool, the CLI, prompts, the scheduler) reaches it through
``MemCube.search``, so a query means the same thing whoever asks.

May import: the store layer and the base vocabulary. Not the graph, activation or io.
"""
