"""The autograder: submissions, nbgrader, the sandbox that runs student code, feedback."""
