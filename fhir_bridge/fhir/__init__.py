"""FHIR R4 plumbing: validation with fhir.resources R4B models, bundles, JSON."""
