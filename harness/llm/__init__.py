"""LLM-based reference recommenders (`llm-embed`, `llm-rank`) and their text layer."""
