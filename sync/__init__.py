"""resync-sword: mirror a ResourceSync source into a SWORD v2 repository.

Stages, one module (or package) each:
discovery -> lists -> state -> linker -> planner -> fetcher -> depositor, driven by engine,
fronted by cli. Pure logic (linker, planner, crosswalk, diffing) does no I/O.
"""

__version__ = "0.1.0"
