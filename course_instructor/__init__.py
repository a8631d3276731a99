"""Instructor-only tooling (never shipped to students): notebook builder, release, course run,
benchmarks, the tiny-model builder and the grader."""
