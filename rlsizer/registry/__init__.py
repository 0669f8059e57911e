"""A small schema registry speaking the Confluent REST subset: its state and rules, its durable log on the `_schemas` topic, and the HTTP server."""
