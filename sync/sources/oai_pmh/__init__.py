"""OAI-PMH 2.0 + OAI-ORE / METS source: mirror any repository that speaks OAI-PMH (DSpace,
EPrints, Invenio, Dataverse...), files included where the repository offers ``ore`` or
``mets`` records."""
