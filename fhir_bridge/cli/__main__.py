"""``python -m fhir_bridge.cli``: the same as the ``fhir-bridge`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
