"""adapterci: release LoRA adapters of LLMs the way good teams release software."""

__version__ = "0.1.0"
