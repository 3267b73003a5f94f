"""Conversation state the gateway keeps on a client's behalf: stored responses (the
Responses API's `store` and `previous_response_id`), each owned by the key that made it."""
