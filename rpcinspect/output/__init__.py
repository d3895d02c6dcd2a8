"""Output: machine writers (JSON Lines, JSON, CSV), the JSON Schema of the records, and the
console summary. Reads records only."""
