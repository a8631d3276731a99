"""Instructor / grader / student pipeline: build notebooks, execute them, release, grade, submit."""
