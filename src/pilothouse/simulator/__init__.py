"""A real HTTP server that behaves like OpenAI- and Anthropic-style LLM providers."""
