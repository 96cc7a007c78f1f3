"""Clinical rules the bridge applies to the data it holds (measurement-based care)."""
