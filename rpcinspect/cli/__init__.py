"""The ``rpcinspect`` command line (typer): parses options, calls the engine, renders."""
