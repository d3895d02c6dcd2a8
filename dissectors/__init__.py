"""rpcinspect's protocol knowledge as data: interface, fault, auth, pipe and syntax tables (TOML)."""
