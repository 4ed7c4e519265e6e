"""The event contract: types, JSONL reading and writing, schema validation."""
