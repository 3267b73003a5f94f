"""The gateway's other front doors: the Responses API and the Anthropic Messages API,
each translated to and from chat completions (the gateway's one internal request shape)."""
