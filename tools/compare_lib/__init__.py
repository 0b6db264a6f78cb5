"""Helpers of tools/compare (side-by-side benchmark of e5 against other CPU engines)."""
