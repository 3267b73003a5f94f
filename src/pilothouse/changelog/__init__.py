"""The behaviour changelog: an entry per promotion, canary change and rollback of a route
and per move of a protected prompt label, readable as a feed and delivered to the teams
subscribed to that prompt or route (docs/contracts.md)."""
