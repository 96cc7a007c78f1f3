"""The bridge's own conformance resources (its CodeSystems, ValueSets, extension
StructureDefinitions and CapabilityStatement, built as a FHIR package) and the validator that
checks resources against base R4 and the US Core profiles they claim (docs/conformance.md)."""
