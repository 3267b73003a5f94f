"""Monitoring built for LLMs: SLOs with multi-window burn-rate alerts, drift detection on
output signals without labels, and alerts on-call can trust. Everything here reads the
per-minute rollups (telemetry/rollups.py), never raw request-log rows."""
