"""Adapters for data subject rights: the rights view every worker keeps, erasure, reports."""
