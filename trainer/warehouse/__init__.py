"""Stage 1, the recorded history: Kafka topics replayed into the DuckDB warehouse, and the point-in-time rows read from it."""
