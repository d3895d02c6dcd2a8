"""Protocol catalog: interface/opnum names, status codes, auth constants, pipes, syntaxes.

The data lives in the top-level ``dissectors`` package as TOML; this package only loads it
(stdlib only) and answers hot-path lookups with plain dict gets.
"""

from rpcinspect.catalog.loader import Catalog, CatalogError, Interface, load_catalog, normalize_pipe

__all__ = ["Catalog", "CatalogError", "Interface", "load_catalog", "normalize_pipe"]
