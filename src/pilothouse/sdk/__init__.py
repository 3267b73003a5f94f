"""The Pilothouse application SDK: prompts from the registry, rendered locally.

    from pilothouse import Client

    client = Client()  # $PILOTHOUSE_URL, $PILOTHOUSE_API_KEY
    prompt = client.get_prompt("support-reply", fallback="Answer kindly: {{ticket}}")
    messages = prompt.render(ticket=text)

Imports only httpx, the standard library and `pilothouse.registry.templates`.
"""

from pilothouse.registry.templates import RenderError, TemplateError
from pilothouse.sdk.client import AsyncClient, Client
from pilothouse.sdk.prompt import Prompt, PromptUnavailable

__all__ = ["AsyncClient", "Client", "Prompt", "PromptUnavailable", "RenderError", "TemplateError"]
