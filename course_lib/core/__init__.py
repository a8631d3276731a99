"""Provided infrastructure: profiles, data, models, sampling, metrics, the exercise registry."""
