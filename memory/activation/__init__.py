"""Activation memory: a local language model and the KV caches it builds when it reads memories.

A cache holds the model's state after reading a prompt head and an ordered list of
memories, so that a question about them starts from that state instead of a cold prefill.
``base`` defines the backend interface and the cache's identity; ``mlx_backend`` and
``onnx_backend`` implement it; ``kv_store`` keeps caches in RAM and on disk (safetensors);
``engine`` loads the configured model lazily and builds and uses caches; ``scheduler``
consumes the typed events the interface emits after each call, predicts the next scene and
warms it. Nothing here is imported at server start: mlx and onnxruntime load with the
first call that needs them.

May import: retrieval, store and the base vocabulary. The scheduler reads cubes through
``MemoryHome`` (a type-only import) and never sees MCP: it gets ``ToolEvent`` objects.
"""
