"""The provider fleet: what serves each model alias (its deployments), and later their
health, circuit breakers and failover."""
