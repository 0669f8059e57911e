"""Faust glue: decode, call the pure pipeline, send. Imports faust and kafka; the pure modules do not."""
