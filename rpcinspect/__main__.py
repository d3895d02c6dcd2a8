"""``python -m rpcinspect``."""

from rpcinspect.cli.main import main

main()
