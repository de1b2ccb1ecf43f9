"""``make soak``: a chaos soak of the replica stack. Simulated agents, humans, live clients and
webhook receivers work for a bounded time while replicas are SIGKILLed, the broker restarts and
MongoDB goes away; then every guarantee is checked from the stores and the clients' logs."""
