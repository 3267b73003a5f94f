"""The dashboard: server-rendered pages over the admin API's own data functions, so every
page is a view of its `/api` twin and never a second path to the store."""
