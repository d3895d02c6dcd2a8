"""transports stage."""
