"""fhir-bridge: FHIR R4 interoperability for behavioral-health medication management."""

from pathlib import Path

__version__ = "0.1.0"

#: The project root: `mappings/`, `config/` and `fixtures/` live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
