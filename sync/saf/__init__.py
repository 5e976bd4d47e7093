"""DSpace Simple Archive Format (SAF): the layout of an item folder, pure (no I/O).

``dublin_core``: DC terms <-> ``dublin_core.xml`` / ``metadata_<schema>.xml``; ``contents``:
the ``contents`` file; ``mapfile``: ``dspace import`` mapfiles; ``script``: ``IMPORT.sh``.
The SAF destination (``sync/destinations/saf.py``) and source (``sync/sources/saf.py``) use
them; so does the crosswalk, to read a ``dublin_core.xml``.
"""
