"""Provision through the insurer's case-by-case channels (a lawyer's, an authority's request)."""
