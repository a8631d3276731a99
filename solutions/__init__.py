"""Instructor implementations of every exercise in course_lib (never shipped to students).

Same modules, names and signatures as the stubs in course_lib/ (a test compares them). Every
function body carries the canary comment ``CANARY`` so that a test can prove that no solution
code reaches the student release.
"""

CANARY = "COURSE-SOLUTION-CANARY-7f3a9c"
