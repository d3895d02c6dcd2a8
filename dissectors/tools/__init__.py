"""Developer tools that (re)build the catalog data; not used at run time."""
