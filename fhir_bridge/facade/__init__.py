"""The FHIR R4 API at /fhir over the bridge's own store: capability statement, read, vread,
history and search (with _include/_revinclude and paging). Search parameters are data in
``mappings/search-parameters.yaml``."""
