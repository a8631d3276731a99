"""Helpers for single units' experiments (widgets, figures, demos)."""
